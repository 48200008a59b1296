"""Dead letters: a record a reader gives up on is parked on ``<topic>.dlq`` with its key,
value and headers and why (:func:`dead_letter`), by an
:class:`~finops.common.consumer.AtLeastOnceConsumer` or by a Faust agent
(:func:`faust_handle`), so that no record is ever skipped silently; a record too large to park
whole is cut to fit (:func:`fit_dead_letter`).
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.exceptions import ProducerSendError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from finops.common.events import EventTopics
from finops.common.metrics import STREAM_EVENTS, export_stream_counts

log = logging.getLogger(__name__)

#: an aiokafka ``ConsumerRecord`` (typed loosely: unit tests hand in look-alikes)
Record = Any


def instance_name() -> str:
    """This process as a dead letter names it: ``<host>:<pid>`` (in Kubernetes the host is
    the pod's name, in compose the container's id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dlq_headers(
    topic: str, partition: int, offset: int, error: BaseException, attempts: int, service: str
) -> list[tuple[str, bytes]]:
    """Headers that let an operator find the original record and see why, and by which
    service and instance, it was given up (each service reading a topic parks a bad record of
    it once; the healer's outcome intake, which every instance runs over the whole of
    ``finops.healing.v1``, once per instance: ``x-instance`` tells them apart)."""
    return [
        ("x-service", service.encode()),
        ("x-instance", instance_name().encode(errors="replace")),
        ("x-origin-topic", topic.encode()),
        ("x-origin-partition", str(partition).encode()),
        ("x-origin-offset", str(offset).encode()),
        ("x-error-type", type(error).__name__.encode()),
        ("x-error", str(error)[:1000].encode(errors="replace")),
        ("x-attempts", str(attempts).encode()),
    ]


#: the most a dead letter's key, value and headers may hold together: under what the
#: producers send (aiokafka's ``max_request_size``, 1 MiB; Faust's, 1,000,000 bytes) and what
#: Apache Kafka takes by default (``max.message.bytes``, 1,048,588), with room for the
#: dead-letter headers and the record's framing
DLQ_MAX_RECORD_BYTES = 900_000
#: what is kept of a key, value or the original headers of a record too large to park whole
DLQ_KEPT_BYTES = 64 * 1024
#: the most a record header's framing takes besides its key and value (two varint lengths)
HEADER_FRAMING_BYTES = 10


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The key, value and original headers of a dead letter, cut to fit one record.

    A record the broker took from another producer may be larger than the service's own
    producer sends (or than the broker then takes with the dead-letter headers added): parked
    whole, the send failed and the reader stopped on it, restarted and stopped again. Such a
    record is parked with the first :data:`DLQ_KEPT_BYTES` of its key and value, its original
    headers dropped when they are that large too, and headers saying what was cut
    (``x-truncated-key-bytes``, ``x-truncated-value-bytes``: the original sizes;
    ``x-dropped-headers``: how many); the whole record stays at its origin offset.
    """
    original = [(k, v or b"") for k, v in headers]
    size = len(key or b"") + len(value or b"") + _headers_size(original)
    if size <= DLQ_MAX_RECORD_BYTES:
        return key, value, original
    cut: list[tuple[str, bytes]] = []
    if key is not None and len(key) > DLQ_KEPT_BYTES:
        cut.append(("x-truncated-key-bytes", str(len(key)).encode()))
        key = key[:DLQ_KEPT_BYTES]
    if value is not None and len(value) > DLQ_KEPT_BYTES:
        cut.append(("x-truncated-value-bytes", str(len(value)).encode()))
        value = value[:DLQ_KEPT_BYTES]
    if _headers_size(original) > DLQ_KEPT_BYTES:
        cut.append(("x-dropped-headers", str(len(original)).encode()))
        original = []
    return key, value, original + cut


def _headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    """What ``headers`` take in a record, their framing counted (many tiny headers add up)."""
    return sum(len(k.encode()) + len(v) + HEADER_FRAMING_BYTES for k, v in headers)


async def dead_letter(
    producer: AIOKafkaProducer,
    record: Record,
    error: BaseException,
    *,
    attempts: int,
    service: str,
) -> None:
    """Park ``record`` on ``<topic>.dlq`` with its key, value and headers, plus why (a record
    too large to park whole is cut: :func:`fit_dead_letter`)."""
    key, value, headers = _letter(record, error, attempts, service)
    await producer.send_and_wait(f"{record.topic}.dlq", value=value, key=key, headers=headers)
    _dead_lettered(service, record.topic, record.partition, record.offset, error)


def _letter(
    record: Record, error: BaseException, attempts: int, service: str
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter of ``record`` (an aiokafka record or a Faust message: the same
    attributes): its key, value and headers, cut to fit, plus the headers that say why."""
    key, value, original = fit_dead_letter(record.key, record.value, record.headers or ())
    why = dlq_headers(record.topic, record.partition, record.offset, error, attempts, service)
    return key, value, original + why


def _dead_lettered(
    service: str, topic: str, partition: int, offset: int, error: BaseException
) -> None:
    """Count and log a record parked on its topic's DLQ (by a consumer or a Faust agent)."""
    STREAM_EVENTS.labels(service, topic, "dead_lettered").inc()
    log.error(
        "record dead-lettered",
        extra={
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "error": "".join(traceback.format_exception_only(error)).strip(),
        },
    )


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (headers or ())}


#: the first and the longest wait before a Faust agent's dead letter is sent again
FAUST_DLQ_RETRY_FIRST_S = 0.2
FAUST_DLQ_RETRY_MAX_S = 10.0


async def faust_handle(
    app: Any,
    event: Any,
    handler: Callable[[bytes], Awaitable[None]],
    *,
    service: str,
    max_attempts: int = 3,
) -> bool:
    """Park what ``handler`` fails on inside a Faust agent; returns False if dead-lettered
    (once the broker took the dead letter: until then it is sent again, and the agent waits,
    while the broker may take it later and the app runs).

    A record it neither handled nor parked (the broker refused its dead letter for good, the
    app stopped meanwhile, or the agent was cancelled) is left unacknowledged, so its offset
    is never committed and the next run reads it again (:func:`leave_uncommitted`), and the
    error is raised; a refusal for good also crashes the app, so /readyz fails and the stream
    service ends its process (:func:`finops.common.stream_service.create_stream_service_app`),
    as an :class:`~finops.common.consumer.AtLeastOnceConsumer`'s loop does. A record that
    reaches an agent of a crashed app is left unacknowledged too.

    Use with ``async for event in stream.events()`` (not ``take_events()``, whose batch is
    acked as a whole) in an agent of ``concurrency=1``, so the message's origin is known and
    no later record of its partition is acked while it is in flight: Faust commits past one
    unacked offset, so with two actors a record refused for good was skipped. Not
    :class:`AtLeastOnceConsumer`'s policy: the ``max_attempts`` tries follow each other with
    no backoff, and any error is parked, a dependency failure included (that consumer raises
    one instead). So it suits handlers that do no I/O, such as decoding a record: its callers
    pass ``max_attempts=1``.
    """
    message = event.message
    try:
        if app.crashed:
            # an agent restarted after the crash below: a later record of the partition
            # acked would have its offset committed, and Faust commits past one unacked offset
            raise RuntimeError(f"the stream processor crashed: {app.crash_reason!r}")
        return await _handle_or_park(app, event, handler, service, max_attempts)
    except BaseException as error:
        leave_uncommitted(app, message)
        log.error(
            "record neither handled nor dead-lettered; left uncommitted for the next run",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error": "".join(traceback.format_exception_only(error)).strip(),
            },
        )
        if isinstance(error, Exception) and not app.should_stop:
            await app.crash(error)
        raise


async def _handle_or_park(
    app: Any,
    event: Any,
    handler: Callable[[bytes], Awaitable[None]],
    service: str,
    max_attempts: int,
) -> bool:
    """Handle ``event``'s record or park it (False); raise when it can do neither."""
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
    key, value, headers = _letter(message, error, max_attempts, service)
    # A dead letter the broker did not take for now is sent again until it does. Not when the
    # app stops (its stop waits for this record), nor on an error that will not pass (an ACL,
    # a record the producer refuses): raised, the caller leaves the record uncommitted.
    retrying = AsyncRetrying(
        wait=wait_exponential(multiplier=FAUST_DLQ_RETRY_FIRST_S, max=FAUST_DLQ_RETRY_MAX_S),
        retry=retry_if_exception(broker_may_take_it_later),
        stop=lambda _: bool(app.should_stop),
        before_sleep=_dead_letter_retried(message),
        reraise=True,
    )
    async for sending in retrying:
        with sending:
            await app.producer.send_and_wait(
                f"{message.topic}.dlq", key, value, None, None, headers
            )
    _dead_lettered(service, message.topic, message.partition, message.offset, error)
    return False


def leave_uncommitted(app: Any, message: Any) -> None:
    """Keep Faust (faust-streaming 0.15) from ever committing ``message``'s offset, nor one
    past it, in this run: the next run of the app's group reads it again.

    A Faust stream acks every event it yielded once the agent is done with it, even when
    the agent raised (``Stream.__aiter__``'s ``finally``), and the consumer commits the acked
    offsets. ``Message.ack`` does nothing for a message already marked acked, so marked
    here, its offset never joins those the consumer commits (``Consumer.ack``); and it no
    longer counts among the unacked messages a stop or a rebalance waits for
    (``Consumer.wait_empty``). A later offset of the partition acked would be committed past
    it (``Consumer._new_offset`` skips a gap of one offset): that is why :func:`faust_handle`
    crashes the app, whose agents then leave every record they get unacknowledged too.
    """
    message.acked = True
    app.consumer.unacked.discard(message)


def broker_may_take_it_later(error: BaseException) -> bool:
    """Whether a send the broker refused may pass when tried again: a retriable Kafka error,
    or no acknowledgement in time (aiokafka does not mark that one retriable), also as the
    cause of Faust's ``ProducerSendError`` (its producer wraps a Kafka error raised while the
    send is queued: read as it came, a transient error was taken for a refusal for good).

    Examples
    --------
    >>> from aiokafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
    >>> from faust.exceptions import ProducerSendError
    >>> broker_may_take_it_later(KafkaTimeoutError())
    True
    >>> broker_may_take_it_later(TopicAuthorizationFailedError())
    False
    >>> wrapped = ProducerSendError("Error while sending")
    >>> wrapped.__cause__ = KafkaTimeoutError()
    >>> broker_may_take_it_later(wrapped)
    True
    """
    if isinstance(error, ProducerSendError) and error.__cause__ is not None:
        error = error.__cause__
    return isinstance(error, KafkaTimeoutError) or (
        isinstance(error, KafkaError) and bool(error.retriable)
    )


def _dead_letter_retried(message: Any) -> Callable[[RetryCallState], None]:
    """Log a dead letter of ``message`` the broker did not take, before it is sent again."""

    def log_retry(state: RetryCallState) -> None:
        log.error(
            "dead letter not written; trying again",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "retry_in_s": state.upcoming_sleep,
                "error": repr(state.outcome.exception() if state.outcome else None),
            },
        )

    return log_retry


def register_validating_agent(app: Any, spec: Any, service: str) -> None:
    """A Faust agent on ``spec``'s topic (an event topic) that decodes each record as the
    event type the topic carries (:meth:`~finops.common.events.EventTopics.decode`).

    A record that is not such an event (one that does not decode, or an event of another
    type) is parked on the topic's DLQ at once (see :func:`faust_handle`; a second try would
    not decode it either): the service's other readers of the topic count such a record and go
    on, so it is parked once by the service.
    """
    source = app.topic(spec.name, value_serializer="raw", partitions=spec.partitions)
    topics = EventTopics()
    topics.event_type(spec.name)  # ValueError now for a topic that carries no events

    async def decode(value: bytes) -> None:
        topics.decode(spec.name, value)

    async def consume(stream: Any) -> None:
        async for event in stream.events():
            await faust_handle(app, event, decode, service=service, max_attempts=1)

    export_stream_counts(service, [spec.name])
    # one actor, one event at a time: faust_handle's uncommitted record needs it
    app.agent(source, name=f"{service}-{spec.name}", concurrency=1)(consume)
