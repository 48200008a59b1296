"""Kafka client factories whose reliability settings come from :class:`CommonSettings`."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

from finops.common.catch_up import CatchUp
from finops.common.settings import CommonSettings

log = logging.getLogger(__name__)


#: The security protocols that encrypt: aiokafka refuses them without an SSL context.
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


def ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    """The TLS context of a client (None unless the protocol is SSL or SASL_SSL): the
    broker's certificate and host name are verified against ``kafka_ssl_cafile``, or the
    system's CAs."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    cafile = settings.kafka_ssl_cafile
    return ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)


def security_config(settings: CommonSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        conf["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        conf.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return conf


def producer_acks(settings: CommonSettings) -> int:
    """``FINOPS_KAFKA_ACKS`` as a number: -1 for ``all`` (every in-sync replica), 1 or 0.

    Every producer a service builds takes it: the aiokafka ones (:func:`producer_config`) and
    the Faust apps' (:func:`finops.common.streams.make_faust_app`), which before always sent
    with -1 whatever the setting said.

    >>> [producer_acks(CommonSettings(kafka_acks=v, kafka_enable_idempotence=False))
    ...  for v in ("all", "-1", "1", "0")]
    [-1, -1, 1, 0]
    """
    return -1 if settings.kafka_acks == "all" else int(settings.kafka_acks)


def producer_config(settings: CommonSettings, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": producer_acks(settings),
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "client_id": f"finops-{settings.service_name}",
        **security_config(settings),
    }
    conf.update(overrides)
    return conf


def make_producer(settings: CommonSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for what ``FINOPS_KAFKA_ACKS`` says (every in-sync replica by
    default)."""
    return AIOKafkaProducer(**producer_config(settings, **overrides))


#: set once the coordinator is wrapped (see :func:`leave_groups_at_generation_zero`)
_leaves_at_generation_zero = False


def leave_groups_at_generation_zero(settings: CommonSettings) -> None:
    """On a broker that numbers group generations from 0, make every consumer of this process
    (aiokafka's, and the Faust apps' built on it) leave its group when it stops.

    aiokafka sends a LeaveGroup only from generation 1 on, where Apache Kafka's first
    generation is; on tansu a stopped first member would hold its group for the whole session
    timeout, and the next member's join (a restarted service's) would wait for it. It wraps
    aiokafka's private ``GroupCoordinator._maybe_leave_group`` (aiokafka 0.14, as locked), so
    ``tests/integration/test_group_leave.py`` checks on the real broker that a stopped member
    is gone. Does nothing unless ``kafka_group_generations_from_zero`` is set; applying it
    twice is harmless.
    """
    global _leaves_at_generation_zero
    if not settings.kafka_group_generations_from_zero or _leaves_at_generation_zero:
        return
    leave_from_generation_one = GroupCoordinator._maybe_leave_group

    async def leave_from_generation_zero(coordinator: GroupCoordinator) -> None:
        if coordinator.generation == 0 and coordinator._group_instance_id is None:
            request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
            try:
                await coordinator._send_req(request)
            except KafkaError as err:  # a minimal effort, as aiokafka's own
                log.warning("LeaveGroup request failed: %s", err)
            else:
                log.info("left group %s at generation 0", coordinator.group_id)
        await leave_from_generation_one(coordinator)  # resets the generation

    GroupCoordinator._maybe_leave_group = leave_from_generation_zero  # type: ignore[method-assign]
    _leaves_at_generation_zero = True


def make_consumer(
    settings: CommonSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only what the caller says it has processed."""
    leave_groups_at_generation_zero(settings)
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "client_id": f"finops-{settings.service_name}",
        **security_config(settings),
    }
    conf.update(overrides)
    return AIOKafkaConsumer(*topics, **conf)


async def start_subscribed(
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    listener: ConsumerRebalanceListener | None = None,
) -> None:
    """Start ``consumer``, then subscribe it to ``topics`` in its group.

    The group join runs in the background and the consumer's first ``getmany`` reads once the
    group has assigned it partitions: a service's start-up never waits for a rebalance, which
    lasts up to the session timeout when a previous member went away without leaving (a
    killed process; on tansu, a member of generation 0 unless
    :func:`leave_groups_at_generation_zero` applies). aiokafka's ``start`` would wait for the
    assignment when the consumer was subscribed first.
    """
    await consumer.start()
    consumer.subscribe(list(topics), listener=listener)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    """``topic``'s partitions in the broker's metadata (None: the broker holds no such topic),
    for a consumer started without a subscription.

    aiokafka starts a consumer with a metadata request of no topics, which Apache Kafka
    answers with none (tansu with every topic), and leaves out of its metadata a topic the
    broker answered with a topic-level error (a leader being elected): a topic missing from
    it is then asked for by name before it is taken to be missing.
    """
    found = consumer.partitions_for_topic(topic)
    if found is None:
        client = consumer._client  # aiokafka has no public refresh; `finops tail` does the same
        client.add_topic(topic)  # tracked: the update asks for it
        await client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    return None if found is None else set(found)


def make_admin(settings: CommonSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        **security_config(settings),
    )


class TopicReadStalled(RuntimeError):
    """A read of a topic got no records for a long while with some partition still short of
    the end offset the broker reported when the read began (the broker went away, or a
    partition cannot be read): what was read is not the whole topic."""


async def read_topic(
    settings: CommonSettings,
    topic: str,
    *,
    idle_s: float = 1.0,
    timeout_s: float | None = None,
    until: Any = None,
    stall_s: float | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the earliest offset, until every partition has reached
    its end offset as of the read's start and then nothing arrives for ``idle_s``.

    A partition's end is the larger of the end offset the broker reports at the start
    (ListOffsets) and the high watermark its fetches had reported when the read first found
    the topic quiet (:func:`_fetched_ends`); a partition no fetch has answered yet is not at
    its end. The
    local tansu broker's ListOffsets(latest) is no end at all: it answered 1, 13 and 16 for
    partitions holding 9, 15 and 16 acknowledged records (and the same after they were read),
    so a read that trusted it ended at the first poll that came back empty past those
    offsets, and on a loaded machine `finops topics` counted 66 of a topic's 80 records. The
    high watermark its fetches report is the log's end.

    A read ends only after a poll that returned nothing: a poll returns part of a fetched batch
    and keeps the rest. The end offsets are needed too: read to quiet alone, a topic whose
    first fetch took longer than ``idle_s`` (several read at once, a large backlog) counted as
    empty.  The quiet after them takes in what is published while the read runs.

    ``until()`` returning true ends the read early; ``timeout_s`` bounds the reading (after
    the consumer has started), and a read it ends returns what it has read without an error.
    With no record for ``stall_s`` (default: the larger of 30 s and ten times ``idle_s``; at
    least ``idle_s``) while a partition is short of its end offset, :class:`TopicReadStalled`
    is raised rather than the read returning part of the topic as if it were all of it.
    """
    stall = max(30.0, 10 * idle_s) if stall_s is None else max(stall_s, idle_s)
    consumer = make_consumer(settings, group_id=None, fetch_max_bytes=16 * 1024 * 1024)
    try:
        await consumer.start()  # inside: a consumer that failed to start is stopped too
        partitions = await topic_partitions(consumer, topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = CatchUp({tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()})
        fetched: set[int] = set()  # the partitions whose end a fetch has reported
        quiet_since = time.monotonic()
        deadline = math.inf if timeout_s is None else quiet_since + timeout_s
        while time.monotonic() <= deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            if batch:
                quiet_since = time.monotonic()
                for records in batch.values():
                    for record in records:
                        yield record
                continue  # records may still be buffered: only an empty poll can end the read
            if until is not None and until():
                return
            quiet = time.monotonic() - quiet_since
            if quiet < idle_s:
                continue
            _fetched_ends(consumer, topic, ends, fetched)
            if len(fetched) == len(tps) and not await _behind(
                consumer, topic, ends, stall, deadline
            ):
                return
            if quiet >= stall:
                raise TopicReadStalled(_stalled(topic, ends, quiet, fetched))
    finally:
        await consumer.stop()


def _fetched_ends(consumer: AIOKafkaConsumer, topic: str, ends: CatchUp, fetched: set[int]) -> None:
    """Raise each partition's end in ``ends`` to the high watermark of the last fetch answered
    for it, once per partition (so that a topic written to all along still has an end), and
    note it in ``fetched``. That fetch was sent after the read started: its high watermark is
    at least the log's end at the start, on every broker."""
    assert isinstance(ends.ends, dict)
    for partition in ends.ends.keys() - fetched:
        highwater = consumer.highwater(TopicPartition(topic, partition))
        if highwater is not None:
            ends.ends[partition] = max(ends.ends[partition], highwater)
            fetched.add(partition)


async def _behind(
    consumer: AIOKafkaConsumer, topic: str, ends: CatchUp, stall: float, deadline: float
) -> bool:
    """Whether some partition is still short of its end offset, asking the consumer's
    positions (which waits on the broker) until ``stall`` seconds or the read's ``deadline``,
    whichever comes first: past ``stall`` the read has stalled, past the deadline it ends."""
    wait = max(min(stall, deadline - time.monotonic()), 0.0)

    async def position(partition: int) -> int:
        return await consumer.position(TopicPartition(topic, partition))

    try:
        return bool(await asyncio.wait_for(ends.behind_now(position), timeout=wait))
    except TimeoutError:
        if time.monotonic() >= deadline:
            return True  # the caller's timeout: the loop ends with what was read
        raise TopicReadStalled(_stalled(topic, ends, wait)) from None


def _stalled(topic: str, ends: CatchUp, quiet: float, fetched: set[int] | None = None) -> str:
    """Why a read stalled: each partition short of its end, or (``fetched`` given: the
    partitions a fetch has answered) that no fetch of it was ever answered."""
    short = [
        f"partition {p} never fetched"
        if fetched is not None and p not in fetched
        else f"partition {p} at {ends.positions.get(p, 'an unknown offset')} of {ends.ends[p]}"
        for p in sorted(ends.ends)
        if p in ends.behind() or (fetched is not None and p not in fetched)
    ]
    return f"reading {topic}: no record for {quiet:.0f} s with {', '.join(short)}"
