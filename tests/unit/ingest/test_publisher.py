"""The ingest publisher: a large batch goes to the partitions the producer's metadata names now,
as a small one does (``send()``), so a topic given more partitions keeps each agent's events on
one partition; a stop while it connects closes the producer it was starting."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner

from finops.common.settings import CommonSettings
from finops.ingest.adapters import publisher as publisher_module
from finops.ingest.adapters.publisher import SMALL_PUBLISH, KafkaPublisher
from finops.ingest.domain.batches import Record


class OneRecordBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if self.records:
            return None  # full
        self.records.append((key, value))
        return object()


class MetadataProducer:
    """A producer whose topics have the partitions ``partitions`` says at the time."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> OneRecordBatch:
        return OneRecordBatch()

    async def send_batch(self, batch: OneRecordBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.records))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def records(agent: str, n: int) -> list[Record]:
    return [Record("agent.cost.v1", agent.encode(), b"{}", "agent.llm_call", None)] * n


async def test_a_large_batch_after_the_topic_grew_goes_where_the_key_now_belongs() -> None:
    agent = next(  # a key whose partition changes from 1 to 3 partitions
        f"agent-{i}"
        for i in range(100)
        if DefaultPartitioner()(f"agent-{i}".encode(), [0, 1, 2], [0, 1, 2]) != 0
    )
    producer = MetadataProducer(partitions=1)
    publisher = KafkaPublisher(CommonSettings(), publish_timeout_s=5.0)
    publisher.producer = producer  # type: ignore[assignment]
    await publisher.publish(records(agent, SMALL_PUBLISH + 1))
    assert {partition for _, partition, _ in producer.sent} == {0}

    producer.partitions, producer.sent = 3, []
    await publisher.publish(records(agent, SMALL_PUBLISH + 1))
    expected = DefaultPartitioner()(agent.encode(), [0, 1, 2], [0, 1, 2])
    assert {partition for _, partition, _ in producer.sent} == {expected}
    assert sum(len(rows) for _, _, rows in producer.sent) == SMALL_PUBLISH + 1


class Connecting:
    """A producer whose start fails at once (``refuse``) or waits for a broker that never
    answers; says whether it was stopped."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.connecting = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        if self.refuse:
            raise KafkaConnectionError("no broker yet")
        self.connecting.set()
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


async def test_stopping_while_a_connection_is_under_way_closes_that_producer(
    monkeypatch: Any,
) -> None:
    producers = [Connecting(refuse=True), Connecting(refuse=False)]
    made = iter(producers)
    monkeypatch.setattr(publisher_module, "make_producer", lambda *args, **kwargs: next(made))
    publisher = KafkaPublisher(CommonSettings(), publish_timeout_s=5.0, reconnect_interval_s=0)
    await publisher.start()  # the first try fails: the second runs in the background
    await producers[1].connecting.wait()
    await publisher.stop()
    assert [p.stopped for p in producers] == [True, True]
