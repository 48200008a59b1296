"""The local broker comes back from a watermark left empty by a kill mid-write (a real stack:
s3rver disk storage, tansu, the gate): the stored records are kept and the next produce
continues after them, instead of the gate staying shut for good."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from finops.cli.storage_repair import OBJECT_SUFFIX
from finops.common.topics import PROVIDER_OUTCOMES

pytestmark = pytest.mark.integration

TOPIC = PROVIDER_OUTCOMES.name


async def _produce(bootstrap: str, values: list[bytes]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(TOPIC, v, key=b"k", partition=0) for v in values]
    finally:
        await producer.stop()
    return [meta.offset for meta in sent]


async def _read(bootstrap: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, 0)])
        await consumer.seek_to_beginning()
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and values:
                break
            values += [r.value for records in batch.values() for r in records]
        return values
    finally:
        await consumer.stop()


def test_an_emptied_watermark_is_rebuilt_and_the_log_goes_on_after_the_stored_records(
    disk_stack,
):
    stack = disk_stack
    bootstrap = stack.kafka_bootstrap
    first = [f"r{n}".encode() for n in range(5)]
    assert asyncio.run(_produce(bootstrap, first)) == [0, 1, 2, 3, 4]

    broker = stack.components["broker"]
    broker.stop()
    (watermark,) = stack.root.glob(
        f"kafka/s3/*/clusters/*/topics/{TOPIC}/partitions/0000000000/watermark.json{OBJECT_SUFFIX}"
    )
    watermark.write_bytes(b"")  # what a kill in the middle of its write leaves
    broker.start()  # the stack's supervisor restarts it this way: prepare, then the command
    stack._wait_ready(["broker", "kafka"], 120)

    assert asyncio.run(_produce(bootstrap, [b"after"])) == [5]
    assert asyncio.run(_read(bootstrap, 6)) == [*first, b"after"]
