"""A recommendation whose delivery the broker fails (its timeout, under a frozen broker; the
local stack's producer is not idempotent) is counted ``failed``: it was counted ``sent`` when
it was queued, and its error was never read ('Future exception was never retrieved')."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import RequestTimedOutError

from finops.optimizer.adapters.recommendation_log import LOGGED, RecommendationLog


class Broker:
    """Fails the first delivery with the broker's timeout, acknowledges the others."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.deliveries:
            done.set_result(None)
        else:
            done.set_exception(RequestTimedOutError())
        self.deliveries.append(done)
        return done


def counted(outcome: str) -> float:
    return LOGGED.labels(outcome)._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_a_delivery_the_broker_failed_is_counted_failed_not_sent() -> None:
    broker = Broker()
    log = RecommendationLog(broker)  # type: ignore[arg-type]
    before = {outcome: counted(outcome) for outcome in ("sent", "failed")}
    await log.start()
    try:
        log.record({"task_type": "summarize"})
        log.record({"task_type": "summarize"})
        while len(broker.deliveries) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the deliveries' callbacks
    finally:
        await log.stop()
    assert counted("sent") - before["sent"] == 1
    assert counted("failed") - before["failed"] == 1
