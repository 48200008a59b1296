"""The local broker's disk storage across broker restarts (a real stack: s3rver, tansu, the
gate): it comes back from a watermark left empty by a kill mid-write, and from a partition of
more than 1,000 stored batches; the stored records are kept and the next produce continues
after them, instead of the gate staying shut for good."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from support import CountProgress

from finops.cli.stack.storage_repair import OBJECT_SUFFIX
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
    """The partition's first ``count`` records. Counted, not read to a lull: each stored batch
    is an object in s3rver, and a loaded machine may take seconds between fetches; a record
    lost fails the read once it has not grown for 60 s (and the broker's end offset is not
    to be trusted: ../shared/notes/local-kafka.md)."""
    partition = TopicPartition(TOPIC, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning()
        progress = CountProgress(count, 60, "the partition's records read back")
        values: list[bytes] = []
        while not progress.done(len(values)):
            batch = await consumer.getmany(partition, timeout_ms=1000)
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

    stack.components["broker"].stop()
    (watermark,) = stack.root.glob(
        f"kafka/s3/*/clusters/*/topics/{TOPIC}/partitions/0000000000/watermark.json{OBJECT_SUFFIX}"
    )
    watermark.write_bytes(b"")  # what a kill in the middle of its write leaves
    stack.components["broker"].start()  # as the supervisor restarts it: prepare, then command
    stack._wait_ready(["broker", "kafka"], 120)

    assert asyncio.run(_produce(bootstrap, [b"after"])) == [5]
    assert asyncio.run(_read(bootstrap, 6)) == [*first, b"after"]


def _restart_broker(stack) -> None:
    broker = stack.components["broker"]
    broker.stop()
    broker.start()  # as the stack's supervisor restarts it: prepare, then the command
    stack._wait_ready(["broker", "kafka"], 120)


def test_a_partition_of_more_than_a_thousand_batches_is_loaded_again_after_a_restart(
    disk_stack,
):
    # s3rver lists 1,000 objects a page; the next page's token needs Node's legacy ciphers
    values = [f"r{n}".encode() for n in range(1_001)]
    assert asyncio.run(_produce(disk_stack.kafka_bootstrap, values))[-1] == 1_000

    _restart_broker(disk_stack)

    assert asyncio.run(_produce(disk_stack.kafka_bootstrap, [b"after"])) == [1_001]
    assert asyncio.run(_read(disk_stack.kafka_bootstrap, 1_002)) == [*values, b"after"]
