"""Publishing to Kafka behind a small port, so the API never waits on a dead broker forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from finops.common.health import kafka_check
from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.ingest.domain.batches import Record
from finops.ingest.domain.errors import BrokerUnavailable

log = logging.getLogger(__name__)

#: Up to this many records, a request appends to the producer's shared open batches; above
#: it, it builds its own batch per partition (faster per record, but a partition's batches
#: are drained one at a time, so many small ones from concurrent requests would queue).
SMALL_PUBLISH = 64
#: when a client refused for a broker outage may try again
RETRY_AFTER_S = 1


class EventPublisher(Protocol):
    async def publish(self, records: Sequence[Record]) -> None:
        """Return only once the broker acknowledged every record; else raise
        :class:`BrokerUnavailable`."""


class KafkaPublisher:
    """An aiokafka producer (acks=all) that (re)connects in the background."""

    def __init__(
        self,
        settings: CommonSettings,
        publish_timeout_s: float,
        reconnect_interval_s: float = 1.0,
        max_batch_bytes: int = 16 * 1024,
    ) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.settings = settings
        self.publish_timeout_s = publish_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect now if the broker is there; otherwise keep trying in the background."""
        if not await self._try_connect():
            self._connector = asyncio.create_task(self._connect_forever())

    async def _try_connect(self) -> bool:
        producer = make_producer(self.settings, max_batch_size=self.max_batch_bytes)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            log.warning("broker not reachable yet", extra={"error": repr(exc)})
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        except BaseException:  # stop() cancelled the connection under way: close it too
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
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
            raise BrokerUnavailable(
                "not connected to the event broker yet", retry_after_seconds=RETRY_AFTER_S
            )
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                if len(records) <= SMALL_PUBLISH:
                    # Small requests share the producer's open batches with each other.
                    acks = [await producer.send(r.topic, r.value, key=r.key) for r in records]
                else:
                    acks = await self._send_batches(producer, records)
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("publish failed", extra={"error": repr(exc), "records": len(records)})
            raise BrokerUnavailable(retry_after_seconds=RETRY_AFTER_S) from exc

    async def _send_batches(
        self, producer: AIOKafkaProducer, records: Sequence[Record]
    ) -> list[asyncio.Future[Any]]:
        """Group records into one batch per partition (about twice as fast as send() each).

        Partitions are chosen by the client's default partitioner (murmur2 of the key), so
        an agent's events land where any other Kafka producer would put them. A topic's
        partitions are read from the producer's metadata once per call, as ``send()`` reads
        them: kept for the process's life, a topic given more partitions would have its
        agents' events split between two partitions by batch size, out of order.
        """
        futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], Any] = {}
        partitions_of: dict[str, list[int]] = {}
        for record in records:
            partitions = partitions_of.get(record.topic)
            if partitions is None:
                partitions = partitions_of[record.topic] = sorted(
                    await producer.partitions_for(record.topic)
                )
            partition = self._partitioner(record.key, partitions, partitions)
            slot = (record.topic, partition)
            batch = open_batches.get(slot)
            if batch is None:
                batch = open_batches[slot] = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, record.topic, partition=partition))
                batch = open_batches[slot] = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None)
        for (topic, partition), batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def check(self) -> None:
        if self.producer is None:
            raise ConnectionError("not connected to the broker")
        await kafka_check(self.producer.client)
