"""Check that saved consumer offsets still point into the log they were read from.

A consumer that keeps its offsets next to its state (the optimizer's checkpoint) resumes by
seeking to them. If the log has been replaced since, those offsets are meaningless: a broker
that lost its data comes back under a new cluster id, a recreated topic starts again at 0,
and a saved offset past the new end makes the consumer wait for records that were already
written before it, skipping every new one in silence. :func:`plan_resume` finds each such
offset, logs a warning, and resumes that partition from the earliest offset the broker has,
so the state is kept and nothing new is skipped.

The check reads the record just before each saved offset instead of asking for the end
offsets: some Kafka-protocol brokers (the local tansu broker) answer ListOffsets(latest)
wrongly, while a fetch is answered right by every broker.
A fetch that does not answer within the probe's time is ambiguous (tansu answers one past the
end with nothing; a loaded broker is slow): then a saved offset within the end offset the
broker reports is kept, since re-reading the partition whole would count again every event
older than the consumer's memory of ids. A partition is reset only on the broker's answer (a
record before the one asked for, or an end offset below the saved one): when it reports no
end offset either (a leader moving in a rolling restart), or its metadata does not hold the
topic, nothing is decided and the :class:`~aiokafka.errors.KafkaError` is raised, so the
start-up or the adoption fails and is tried again, as for any broker failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from finops.common.kafka import make_admin, make_consumer, topic_partitions
from finops.common.settings import CommonSettings

log = logging.getLogger(__name__)


def partition_key(tp: TopicPartition) -> str:
    """How saved offsets name a partition: ``"topic:partition"``."""
    return f"{tp.topic}:{tp.partition}"


def parse_partition_key(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition(":")
    return TopicPartition(topic, int(partition))


@dataclass(frozen=True)
class ResumePlan:
    """Where to resume: the saved offsets the log still holds; every other partition from
    its earliest offset. ``reset`` names each saved offset that was dropped, and why."""

    cluster_id: str
    offsets: dict[str, int]
    reset: dict[str, str] = field(default_factory=dict)


async def broker_cluster_id(settings: CommonSettings) -> str:
    admin = make_admin(settings)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return str(cluster.get("cluster_id") or "")


async def plan_resume(
    settings: CommonSettings,
    saved: Mapping[str, int],
    saved_cluster_id: str | None,
    *,
    what: str,
    probe_timeout_s: float = 3.0,
) -> ResumePlan:
    """Decide where a consumer resumes, given the offsets (and cluster id) it saved.

    ``what`` names the consumer in the warnings. An offset is kept when the record just
    before it is still in the log (offset 0 always is); otherwise the partition resumes from
    the earliest offset the broker has.

    Raises
    ------
    KafkaError
        The broker did not answer (its cluster id, or the end offset of a partition whose
        probe got no record in time): nothing is decided, the caller tries again later.
    """
    cluster_id = await broker_cluster_id(settings)
    if saved_cluster_id and cluster_id and saved_cluster_id != cluster_id:
        reason = f"the broker's cluster id changed from {saved_cluster_id!r} to {cluster_id!r}"
        _warn(what, reason, list(saved))
        return ResumePlan(cluster_id, {}, dict.fromkeys(saved, reason))
    held = await _offsets_the_log_holds(settings, saved, probe_timeout_s)
    reset = {key: reason for key, reason in held.items() if reason}
    if reset:
        for key, reason in reset.items():
            _warn(what, reason, [key])
    offsets = {key: offset for key, offset in saved.items() if key not in reset}
    return ResumePlan(cluster_id, offsets, reset)


def _warn(what: str, reason: str, keys: list[str]) -> None:
    log.warning(
        "%s: saved offsets no longer point into the log (%s); resuming %s from the earliest"
        " offset the broker has, keeping the state",
        what,
        reason,
        ", ".join(sorted(keys)),
        extra={"reason": reason, "partitions": sorted(keys)},
    )


async def _offsets_the_log_holds(
    settings: CommonSettings, saved: Mapping[str, int], timeout_s: float
) -> dict[str, str | None]:
    """For each saved ``topic:partition`` offset: None if the log holds it, else why not."""
    verdict: dict[str, str | None] = {k: None for k, v in saved.items() if v <= 0}
    to_probe = {parse_partition_key(k): v for k, v in saved.items() if v > 0}
    if not to_probe:
        return verdict
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await _partitions_of(consumer, {tp.topic for tp in to_probe})
        existing = {tp for tp in to_probe if tp.partition in partitions[tp.topic]}
        for tp in set(to_probe) - existing:
            verdict[partition_key(tp)] = f"partition {partition_key(tp)} no longer exists"
        if existing:
            consumer.assign(list(existing))
            for tp in existing:
                consumer.seek(tp, to_probe[tp] - 1)
            answered, silent = await _probe(
                consumer, {tp: to_probe[tp] for tp in existing}, timeout_s
            )
            verdict.update(answered)
            if silent:
                verdict.update(
                    await _judge_silent(
                        consumer, silent, timeout_s, settings.kafka_end_offset_in_last_batch
                    )
                )
    finally:
        await consumer.stop()
    return verdict


async def _partitions_of(consumer: AIOKafkaConsumer, topics: set[str]) -> dict[str, set[int]]:
    """Each topic's partitions in the broker's metadata (:func:`~finops.common.kafka.
    topic_partitions`, which asks for a topic the consumer's metadata lacks: Apache Kafka
    answers a new consumer's first metadata request with no topics, and aiokafka leaves out
    one the broker answered with a topic-level error). Read as "no such partition", a
    missing topic would reset the partition and count its log again. So a topic missing
    after a metadata request naming it raises
    :class:`~aiokafka.errors.KafkaError`: nothing is decided (a deleted topic cannot be
    read either; the services' topics are created before they start)."""
    known = {topic: await topic_partitions(consumer, topic) for topic in sorted(topics)}
    missing = sorted(topic for topic, partitions in known.items() if partitions is None)
    if missing:
        raise KafkaError(
            f"the broker's metadata holds no topic {', '.join(missing)}: whether the saved"
            " offsets still point into it cannot be told"
        )
    return {topic: set(partitions or ()) for topic, partitions in known.items()}


async def _judge_silent(
    consumer: AIOKafkaConsumer,
    silent: dict[TopicPartition, int],
    timeout_s: float,
    ends_in_last_batch: bool = False,
) -> dict[str, str | None]:
    """Partitions whose probe got no record in time. The local broker answers a fetch past the
    end with nothing, but a loaded one can be as slow: the end offset it reports decides. It
    never reports more than the true end, so a saved offset at or below it is in the log and
    is kept. Above it: past the end, unless the broker reports the offset after the first
    record of its last batch (``ends_in_last_batch``: tansu, ``FINOPS_KAFKA_END_OFFSET_IN_
    LAST_BATCH``), when the saved offset may lie in that batch (a review saw 2100 saved, 2087
    reported, 2119 true): then the log's end is read from that batch (:func:`_true_ends`).

    Raises
    ------
    KafkaError
        The broker reported no end offset of some partition, or (``ends_in_last_batch``)
        did not answer the fetch of its last batch either: judged past the end, its whole
        retained log would be applied again to the state kept.
    """
    try:
        ends = await consumer.end_offsets(list(silent))
    except KafkaError as exc:
        log.warning(
            "the broker did not report end offsets: where %s resume is not decided",
            ", ".join(sorted(map(partition_key, silent))),
            extra={"error": repr(exc)},
        )
        raise
    unreported = sorted(partition_key(tp) for tp in silent if tp not in ends)
    if unreported:
        raise KafkaError(f"the broker reported no end offset of {', '.join(unreported)}")
    beyond = {tp: ends[tp] for tp, saved in silent.items() if ends[tp] < saved}
    if ends_in_last_batch and beyond:
        ends = {**ends, **await _true_ends(consumer, beyond, 2 * timeout_s)}
    verdict: dict[str, str | None] = {}
    for tp, saved in silent.items():
        key = partition_key(tp)
        if ends[tp] >= saved:
            log.warning(
                "the broker did not answer a fetch of %s within %.0f s; resuming from the saved"
                " offset %d",
                key,
                timeout_s,
                saved,
            )
            verdict[key] = None
        else:
            verdict[key] = f"offset {saved} of {key} is past the end"
    return verdict


async def ends_after_last_batches(
    consumer: Any, reported: Mapping[TopicPartition, int], timeout_s: float
) -> tuple[dict[TopicPartition, int], set[TopicPartition]]:
    """The end of each partition whose broker reports the offset after the first record of its
    last batch (tansu: ``FINOPS_KAFKA_END_OFFSET_IN_LAST_BATCH``): one past the last record a
    fetch from just before that offset returns (the batch, which every broker answers right);
    and the partitions whose fetch brought nothing within ``timeout_s``. It seeks the
    consumer's partitions there. Also ``finops tail``'s way to the end of a topic."""
    pending = {tp for tp, end in reported.items() if end > 0}
    ends = {tp: end for tp, end in reported.items() if end <= 0}
    for tp in pending:
        consumer.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=200)
        for tp, records in batch.items():
            if records and tp in pending:
                ends[tp] = max(reported[tp], records[-1].offset + 1)
                pending.discard(tp)
        await asyncio.sleep(0)
    return ends, pending


async def _true_ends(
    consumer: AIOKafkaConsumer, reported: dict[TopicPartition, int], timeout_s: float
) -> dict[TopicPartition, int]:
    """:func:`ends_after_last_batches`; a partition whose fetch brings nothing in time raises
    KafkaError: nothing is decided."""
    true, pending = await ends_after_last_batches(consumer, reported, timeout_s)
    if pending:
        keys = ", ".join(sorted(map(partition_key, pending)))
        raise KafkaError(
            f"the broker answered no fetch of the last batch of {keys} within {timeout_s:.0f} s:"
            " whether the saved offsets are past the end cannot be told"
        )
    return true


async def _probe(
    consumer: AIOKafkaConsumer, wanted: dict[TopicPartition, int], timeout_s: float
) -> tuple[dict[str, str | None], dict[TopicPartition, int]]:
    """Fetch from each saved offset minus one and judge by the first record that comes back;
    also returns the partitions from which none came back in time."""
    verdict: dict[str, str | None] = {}
    pending = dict(wanted)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=200, max_records=1)
        for tp, records in batch.items():
            if not records or tp not in pending:
                continue
            saved = pending.pop(tp)
            first = records[0].offset
            # Earlier than asked: the broker said the offset is out of range and the fetch
            # restarted from the earliest record, so the log is shorter than the saved offset.
            verdict[partition_key(tp)] = (
                None
                if first >= saved - 1
                else f"offset {saved} of {partition_key(tp)} is past the end of the log"
            )
        await asyncio.sleep(0)
    return verdict, pending
