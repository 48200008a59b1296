"""Publishing through a broker that stops answering for a while: wait, retry, or end.

A broker that freezes (a leader moving on Apache Kafka, a paused local broker) makes a
producer's sends fail after its request timeout (``RequestTimedOutError``, a
``KafkaTimeoutError`` when its buffer stays full), or, with an idempotent producer, never fail:
aiokafka then retries them until the broker answers, and the send's acknowledgement just does
not come. :func:`publish_acknowledged` handles both the same way:

* every record is sent once and its acknowledgement awaited; a record the broker refused with
  a transient error is sent again, and only that record (what went through is not sent a
  second time), with tenacity's exponential backoff; one still unacknowledged after
  ``ack_wait_s`` is left to the producer (an idempotent producer retries it itself: sent again
  it would be there twice) and awaited again;
* the instance's :class:`BrokerOutage` starts when a send fails or stays unacknowledged past
  ``ack_wait_s`` and ends when a publish is acknowledged in full: the readiness check reports
  it meanwhile. It changes only then (an empty publish leaves it as it is), so it does not
  flap;
* an outage longer than ``tolerance_s`` ends the wait with :class:`BrokerOutageTooLong`, an
  error retrying cannot fix (an authorization refused, a topic the broker does not know, a
  record too large) at once with :class:`BrokerRefused`; either is logged in one line and
  raised, so the loop ends and the service restarts from its checkpoint.

``UnknownTopicOrPartitionError`` is the broker's answer to a produce sent to a broker that no
longer hosts the partition (its replica moved away in a reassignment: aio-libs/aiokafka#176,
KAFKA-6796; Kafka calls it retriable, and aiokafka retries such a batch, refreshing its
metadata, until the request timeout), and a send's when it got no metadata for the topic
within that timeout (a frozen broker). So it is waited for as any outage, and counts as
permanent only when metadata the broker answered since the send began lacks the topic: a
topic deleted, or never created. A partition whose leader moves is in that metadata still.

A record whose acknowledgement was lost (the broker wrote it, then froze before answering) is
written twice when it is sent again with a producer that is not idempotent: what is published
this way must be deduplicable by its key or id (a breaker's state is the latest per key; an
alert carries its ``alert_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

log = logging.getLogger(__name__)

#: Errors sending again cannot fix. A closed (shutting down) or fenced producer, or a broken
#: idempotent sequence, fails every later send of the same producer. An unknown topic is not
#: one of them by itself: see the module (:func:`topic_gone`).
PERMANENT_ERRORS: tuple[type[KafkaError], ...] = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedVersionError,
    ProducerClosed,
    ProducerFenced,
    OutOfOrderSequenceNumber,
)


class BrokerOutageTooLong(RuntimeError):
    """The broker has not taken this instance's records for longer than the tolerance."""


class BrokerRefused(RuntimeError):
    """The broker refused a record with an error that sending again cannot fix."""


class _NotYet(Exception):
    """A round left records unacknowledged (tenacity retries it)."""


@dataclass(frozen=True)
class Outgoing:
    """One record to publish."""

    topic: str
    value: bytes
    key: bytes | None = None


class BrokerOutage:
    """Since when, and why, this instance's publishes wait for the broker, shared by its
    loops: each publish waits at most ``tolerance_s``; the instance is not ready while any
    waits (the oldest wait is reported)."""

    def __init__(
        self,
        tolerance_s: float,
        ack_wait_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tolerance_s = tolerance_s
        self.ack_wait_s = ack_wait_s
        self.clock = clock
        #: the publishes waiting now: when each started to, and why
        self._waits: dict[object, tuple[float, str]] = {}
        #: waits this instance rode out (ended by their publish acknowledged in full)
        self.survived = 0
        #: the longest of them, seconds
        self.longest_s = 0.0

    def started(self, waiter: object, reason: str) -> None:
        """A send of ``waiter`` failed or stayed unacknowledged: its wait starts (if it had
        not)."""
        if waiter not in self._waits:
            self._waits[waiter] = (self.clock(), reason)
            log.warning(
                "the broker does not take records; waiting for it",
                extra={"reason": reason, "tolerance_s": self.tolerance_s},
            )

    def ended(self, waiter: object) -> None:
        """``waiter``'s records were acknowledged in full: its wait (if any) is over."""
        started = self._waits.pop(waiter, None)
        if started is None:
            return
        lasted = self.clock() - started[0]
        self.survived += 1
        self.longest_s = max(self.longest_s, lasted)
        log.warning("the broker takes records again", extra={"waited_s": round(lasted, 1)})

    def given_up(self, waiter: object) -> None:
        """``waiter`` gave up (it raised): it no longer waits."""
        self._waits.pop(waiter, None)

    def elapsed(self, waiter: object) -> float:
        started = self._waits.get(waiter)
        return 0.0 if started is None else self.clock() - started[0]

    def reason(self, waiter: object) -> str | None:
        started = self._waits.get(waiter)
        return None if started is None else started[1]

    def exceeded(self, waiter: object) -> bool:
        return waiter in self._waits and self.elapsed(waiter) > self.tolerance_s

    def problem(self) -> str | None:
        """Why the instance is not ready while a publish waits (None otherwise)."""
        if not self._waits:
            return None
        since, reason = min(self._waits.values(), key=lambda wait: wait[0])
        return (
            f"waiting for the broker to take records (for {self.clock() - since:.0f} s, at"
            f" most {self.tolerance_s:g} s): {reason}"
        )


def refused(exc: BaseException) -> bool:
    """Whether ``exc``, a send's failure, is one sending again cannot fix whatever the
    cluster's metadata says (an unknown topic is not: see :func:`topic_gone`)."""
    return isinstance(exc, PERMANENT_ERRORS)


def topic_gone(producer: AIOKafkaProducer, topic: str, since_ms: float) -> bool:
    """Whether ``producer``'s metadata, answered by the broker at or after ``since_ms`` (epoch
    milliseconds), lacks ``topic``. Metadata older than that, or none (a frozen broker), says
    nothing: the topic may only have been out of reach."""
    cluster = producer.client.cluster
    answered_ms = getattr(cluster, "_last_successful_refresh_ms", 0)
    return bool(answered_ms >= since_ms) and cluster.partitions_for_topic(topic) is None


def _refused(exc: BaseException, topic: str, producer: AIOKafkaProducer, sent_at_ms: float) -> bool:
    """Whether sending again cannot fix ``exc``, a send's failure to ``topic``. An
    UnknownTopicOrPartitionError did not mean the topic is gone: it is refused only when fresh
    metadata lacks the topic (a partition moving to another broker is retried, within the
    outage tolerance)."""
    if isinstance(exc, UnknownTopicOrPartitionError):
        return topic_gone(producer, topic, sent_at_ms)
    return refused(exc)


async def publish_acknowledged(
    producer: AIOKafkaProducer, records: Sequence[Outgoing], outage: BrokerOutage, *, what: str
) -> None:
    """Publish ``records``; return once the broker acknowledged each (see the module)."""
    if not records:
        return
    unsent = list(records)
    inflight: dict[asyncio.Future[Any], Outgoing] = {}
    waiter = object()  # this publish's wait
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_NotYet),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            stop=lambda _state: outage.exceeded(waiter),
            reraise=True,
        ):
            with attempt:
                await _round(producer, unsent, inflight, outage, waiter, what)
    except _NotYet as exc:
        message = (
            f"{what}: the broker has not taken records for {outage.elapsed(waiter):.0f} s,"
            f" longer than FINOPS_BROKER_OUTAGE_TOLERANCE_S ({outage.tolerance_s:g} s):"
            f" {outage.reason(waiter)}"
        )
        outage.given_up(waiter)  # no longer waiting: the loop ends with this error
        raise BrokerOutageTooLong(message) from exc
    except BaseException:  # refused, cancelled: no longer waiting
        outage.given_up(waiter)
        raise
    finally:
        for future in inflight:  # given up on (the process ends): no error left unretrieved
            future.add_done_callback(_retrieve)
    outage.ended(waiter)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _round(
    producer: AIOKafkaProducer,
    unsent: list[Outgoing],
    inflight: dict[asyncio.Future[Any], Outgoing],
    outage: BrokerOutage,
    waiter: object,
    what: str,
) -> None:
    """Send what is unsent, wait for the acknowledgements in flight; _NotYet when some are
    missing (the failed ones are unsent again)."""
    failure: BaseException | None = None
    failed_topic = ""
    sent_at_ms = time.time() * 1000
    while unsent and failure is None:
        record = unsent[0]
        try:
            future = await producer.send(record.topic, record.value, key=record.key)
        except KafkaError as exc:
            failure, failed_topic = exc, record.topic
        else:
            unsent.pop(0)
            inflight[future] = record
    if inflight:
        left = outage.tolerance_s - outage.elapsed(waiter)
        wait = max(0.0, min(outage.ack_wait_s, left))
        await asyncio.wait(list(inflight), timeout=wait)
        for future in [future for future in inflight if future.done()]:  # in send order
            record = inflight.pop(future)
            error = future.exception() if not future.cancelled() else asyncio.CancelledError()
            if error is not None:
                unsent.append(record)
                if failure is None:
                    failure, failed_topic = error, record.topic
    if failure is not None and _refused(failure, failed_topic, producer, sent_at_ms):
        message = (
            f"{what}: the broker refused a record ({failure!r}); sending it again cannot fix that"
        )
        raise BrokerRefused(message) from failure
    if failure is not None or inflight:
        reason = repr(failure) if failure is not None else (
            f"{len(inflight)} record(s) unacknowledged after {outage.ack_wait_s:g} s"
        )  # fmt: skip
        outage.started(waiter, reason)
        raise _NotYet(reason)
