"""Publishing to Kafka behind a small port, so the API never waits on a dead broker forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.ingest.domain.batches import Record
from finops.ingest.domain.errors import BrokerUnavailable

log = logging.getLogger(__name__)


class EventPublisher(Protocol):
    async def publish(self, records: Sequence[Record]) -> None:
        """Return only once the broker acknowledged every record; else raise
        :class:`BrokerUnavailable`."""


class KafkaPublisher:
    """An aiokafka producer (acks=all) that (re)connects in the background."""

    def __init__(
        self, settings: CommonSettings, publish_timeout_s: float, reconnect_interval_s: float = 1.0
    ) -> None:
        self.settings = settings
        self.publish_timeout_s = publish_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect now if the broker is there; otherwise keep trying in the background."""
        if not await self._try_connect():
            self._connector = asyncio.create_task(self._connect_forever())

    async def _try_connect(self) -> bool:
        producer = make_producer(self.settings)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            log.warning("broker not reachable yet", extra={"error": repr(exc)})
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self.producer = producer
        log.info("connected to the broker")
        return True

    async def _connect_forever(self) -> None:
        while not await self._try_connect():
            await asyncio.sleep(self.reconnect_interval_s)

    async def stop(self) -> None:
        if self._connector:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self.producer:
            await self.producer.stop()

    async def publish(self, records: Sequence[Record]) -> None:
        producer = self.producer
        if producer is None:
            raise BrokerUnavailable("not connected to the event broker yet", headers=_retry_after())
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                acks = [await producer.send(r.topic, r.value, key=r.key) for r in records]
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("publish failed", extra={"error": repr(exc), "records": len(records)})
            raise BrokerUnavailable(headers=_retry_after()) from exc

    async def check(self) -> None:
        if self.producer is None:
            raise ConnectionError("not connected to the broker")
        metadata = await self.producer.client.fetch_all_metadata()
        if not metadata.brokers():
            raise ConnectionError("broker returned no brokers")


def _retry_after(seconds: int = 1) -> dict[str, str]:
    return {"Retry-After": str(seconds)}
