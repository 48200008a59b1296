"""finish(): a lifespan's loop that does not stop is cancelled, one that failed is logged, and
neither keeps the lifespan from stopping what comes after it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from finops.common.lifespan import finish


async def test_a_loop_that_does_not_stop_is_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    never = asyncio.Event()
    stuck = asyncio.create_task(never.wait(), name="stuck-loop")
    with caplog.at_level(logging.WARNING):
        await finish(stuck, timeout=0.01)
    assert stuck.cancelled()
    assert "stuck-loop did not stop" in caplog.text


async def test_a_loop_that_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("broker gone")

    failed = asyncio.create_task(broken(), name="broken-loop")
    with caplog.at_level(logging.ERROR):
        await finish(failed, timeout=5)
    assert failed.done() and isinstance(failed.exception(), RuntimeError)
    assert "broken-loop failed" in caplog.text


async def test_a_loop_that_stops_is_awaited() -> None:
    async def loop() -> int:
        await asyncio.sleep(0)
        return 7

    task = asyncio.create_task(loop())
    await finish(task, timeout=5)
    assert task.result() == 7
