"""The demo fleet's delivery: it waits for the optimizer and fails in one clear line."""

from __future__ import annotations

import httpx
import pytest

from finops.cli.demo import _Delivery
from finops.cli.stack import StackError


def optimizer_counting(events: list[int]) -> httpx.AsyncClient:
    """An optimizer whose summary reports the next count of ``events`` on every request."""

    def summary(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/stats/summary"
        return httpx.Response(200, json={"events": events.pop(0) if len(events) > 1 else events[0]})

    return httpx.AsyncClient(transport=httpx.MockTransport(summary), base_url="http://optimizer")


async def test_delivery_counts_from_what_the_optimizer_had_before_the_run(tmp_path):
    async with optimizer_counting([808, 808, 810, 812]) as opt:
        delivery = _Delivery(opt, [], tmp_path / "optimizer.log", timeout_s=30)
        await delivery.start()
        delivery.sent = 4
        await delivery._caught_up()  # returns once 812 = 808 + 4 are counted
        assert delivery.baseline == 808


async def test_events_the_optimizer_never_takes_in_stop_the_demo_with_one_clear_line(tmp_path):
    log = tmp_path / "logs" / "optimizer.log"
    async with optimizer_counting([808, 810]) as opt:
        delivery = _Delivery(opt, [], log, timeout_s=0.3)
        await delivery.start()
        delivery.sent = 4
        with pytest.raises(StackError) as caught:
            await delivery._caught_up()
    assert str(caught.value) == (
        f"the optimizer took in 2 of the 4 events this run sent within 0.3 s; see {log}"
    )
