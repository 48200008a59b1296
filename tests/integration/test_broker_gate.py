"""The local stack's broker gate: producers writing at once to the same partitions lose no
acknowledged record (tansu 0.6.0 alone gives two concurrent batches the same offsets and keeps
one of them; see ``finops.cli.stack.broker_gate``)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import pytest

from finops.common.kafka import make_producer, read_topic
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec

pytestmark = pytest.mark.integration

PRODUCERS, ROUNDS, RECORDS = 3, 40, 30


async def test_concurrent_producers_get_distinct_offsets_and_every_record_is_kept(
    infra: Any,
) -> None:
    kafka = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    spec = TopicSpec(f"test.gate.{uuid.uuid4().hex[:8]}", 3, "key", "test")
    await ensure_topics(kafka, [spec])
    acknowledged: collections.Counter[tuple[int, int]] = collections.Counter()

    async def produce(name: str) -> None:
        producer = make_producer(kafka)
        await producer.start()
        try:
            for round_ in range(ROUNDS):  # each round a batch per partition, all at once
                sends = [
                    await producer.send(spec.name, f"{name}-{round_}-{i}".encode(), key=b"%d" % i)
                    for i in range(RECORDS)
                ]
                for sent in await asyncio.gather(*sends):
                    acknowledged[(sent.partition, sent.offset)] += 1
        finally:
            await producer.stop()

    await asyncio.gather(*(produce(f"p{n}") for n in range(PRODUCERS)))
    values = [r.value async for r in read_topic(kafka, spec.name, idle_s=2.0, timeout_s=120)]
    total = PRODUCERS * ROUNDS * RECORDS
    assert sum(acknowledged.values()) == total
    assert [where for where, n in acknowledged.items() if n > 1] == []  # no offset given twice
    assert len(values) == len(set(values)) == total
