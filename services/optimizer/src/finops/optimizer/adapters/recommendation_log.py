"""Every recommendation goes to ``finops.recommendations.v1`` without slowing the API.

The API hands records to a bounded queue; a background task produces them. When the broker
is slow the queue absorbs bursts; when it is full, records are dropped and counted rather
than making callers wait (the log serves off-policy evaluation, the answer serves the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from finops.common.metrics import counter_by
from finops.common.topics import RECOMMENDATIONS

log = logging.getLogger(__name__)
LOGGED = counter_by(
    "finops_optimizer_recommendations_logged_total",
    "Recommendations written to finops.recommendations.v1, by outcome (sent, failed, or"
    " dropped: the queue was full)",
    "outcome",
    ("sent", "failed", "dropped"),
)


def _failed(exc: BaseException) -> None:
    LOGGED.labels("failed").inc()
    log.warning("could not log a recommendation", extra={"error": repr(exc)})


def _delivered(delivery: asyncio.Future[Any]) -> None:
    if delivery.cancelled():
        _failed(asyncio.CancelledError())
    elif (error := delivery.exception()) is not None:
        _failed(error)
    else:
        LOGGED.labels("sent").inc()


class RecommendationLog:
    def __init__(self, producer: AIOKafkaProducer, capacity: int = 50_000) -> None:
        self.producer = producer
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None

    def record(self, recommendation: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(recommendation)
        except asyncio.QueueFull:
            LOGGED.labels("dropped").inc()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="recommendation-log")

    async def _drain(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                delivery = await self.producer.send(
                    RECOMMENDATIONS.name,
                    json.dumps(item, default=str).encode(),
                    key=str(item.get("task_type", "")).encode(),
                )
            except Exception as exc:  # log and continue: the broker may come back
                _failed(exc)
            else:
                # counted when the broker answers: a send it timed out (a frozen broker) was
                # counted sent, its failure never read ('Future exception was never retrieved')
                delivery.add_done_callback(_delivered)

    async def stop(self, timeout: float = 5.0) -> None:
        """Give queued records a moment to leave, then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.queue.empty():
                    await asyncio.sleep(0.05)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.producer.flush()
