"""At-least-once consumption with a dead-letter topic, for every consumer outside Faust.

A record's offset is committed only after its handler succeeded or the record was written to
``<topic>.dlq`` and acknowledged; a handler that keeps failing therefore never blocks its
partition, and no record is ever skipped silently. Handlers must be idempotent on the event
id, since a crash between processing and commit replays the record.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from finops.common.metrics import STREAM_EVENTS

log = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


def dlq_headers(
    topic: str, partition: int, offset: int, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    """Headers that let an operator find the original record and see why it was given up."""
    return [
        ("x-origin-topic", topic.encode()),
        ("x-origin-partition", str(partition).encode()),
        ("x-origin-offset", str(offset).encode()),
        ("x-error-type", type(error).__name__.encode()),
        ("x-error", str(error)[:1000].encode(errors="replace")),
        ("x-attempts", str(attempts).encode()),
    ]


async def park_on_dlq(producer: AIOKafkaProducer, record: Any, error: BaseException) -> None:
    """Send a record that does not decode to its topic's dead-letter topic, with the headers
    of :func:`dlq_headers` (one attempt: decoding again would fail again)."""
    await producer.send_and_wait(
        f"{record.topic}.dlq",
        record.value,
        key=record.key,
        headers=list(record.headers or ())
        + dlq_headers(record.topic, record.partition, record.offset, error, attempts=1),
    )


class AtLeastOnceConsumer:
    """Consume ``topics`` in ``group_id``; commit after processing; poison → DLQ."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handler: Handler,
        *,
        service: str,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.1,
        batch_max_records: int = 500,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.service = service
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.batch_max_records = batch_max_records
        self.processed = 0
        self.dead_lettered = 0

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handler(record)
                STREAM_EVENTS.labels(self.service, record.topic, "processed").inc()
                self.processed += 1
                return
            except Exception as exc:  # event handlers log and continue
                error = exc
                log.warning(
                    "handler failed",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
        assert error is not None
        await self.dead_letter(record, error)

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        headers = list(record.headers or ()) + dlq_headers(
            record.topic, record.partition, record.offset, error, self.max_attempts
        )
        await self.producer.send_and_wait(
            f"{record.topic}.dlq", value=record.value, key=record.key, headers=headers
        )
        STREAM_EVENTS.labels(self.service, record.topic, "dead_lettered").inc()
        self.dead_lettered += 1
        log.error(
            "record dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": "".join(traceback.format_exception_only(error)).strip(),
            },
        )

    async def process_batch(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        for tp, records in batch.items():
            for record in records:
                await self._process(record)
            if records:
                await self.consumer.commit({tp: records[-1].offset + 1})

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (or forever), processing each batch before committing."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_max_records)
            await self.process_batch(batch)


def topics_with_dlq(topics: Iterable[str]) -> list[str]:
    return [f"{t}.dlq" for t in topics]


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (headers or ())}


async def faust_handle(
    app: Any,
    event: Any,
    handler: Callable[[bytes], Awaitable[None]],
    *,
    service: str,
    max_attempts: int = 3,
) -> bool:
    """The same policy inside a Faust agent: retry, then DLQ; returns False if dead-lettered.

    Use with ``async for event in stream.events()`` so the message's origin is known.
    """
    message = event.message
    error: BaseException | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            await handler(event.value)
            STREAM_EVENTS.labels(service, message.topic, "processed").inc()
            return True
        except Exception as exc:
            error = exc
            log.warning("handler failed", extra={"attempt": attempt, "error": repr(exc)})
    assert error is not None
    headers = list(message.headers or ()) + dlq_headers(
        message.topic, message.partition, message.offset, error, max_attempts
    )
    await app.producer.send_and_wait(
        f"{message.topic}.dlq", message.key, message.value, None, None, headers
    )
    STREAM_EVENTS.labels(service, message.topic, "dead_lettered").inc()
    return False


def register_validating_agent(app: Any, spec: Any, event_type: Any, service: str) -> None:
    """A Faust agent on ``spec``'s topic that decodes each record as ``event_type``.

    Records that do not decode are retried, then parked on the topic's DLQ (see
    :func:`faust_handle`). Stream services start from this until their own handlers land.
    """
    source = app.topic(spec.name, value_serializer="raw", partitions=spec.partitions)

    async def decode(value: bytes) -> None:
        event_type.from_kafka(value)

    async def consume(stream: Any) -> None:
        async for event in stream.events():
            await faust_handle(app, event, decode, service=service)

    app.agent(source, name=f"{service}-{spec.name}")(consume)
