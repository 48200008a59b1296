"""A reader without a group reads every partition the broker has of its topics, not only the
ones the platform declares (fakes for the consumer)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from support import MetadataRefreshes

from finops.common.consumer import AtLeastOnceConsumer


class BrokerMetadata(MetadataRefreshes):
    """A consumer that starts without a broker and knows ``partitions`` per topic; the first
    metadata leaves out the topics in ``late`` (a topic-level error), a fresh one holds them."""

    def __init__(self, partitions: dict[str, set[int]], late: frozenset[str] = frozenset()):
        self.known = partitions
        self.late = late
        self.refreshed = 0
        self.assigned: list[TopicPartition] = []

    async def start(self) -> None: ...

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        if topic in self.late and not self.refreshed:
            return None
        return self.known.get(topic)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions


class Offsets:
    def __init__(self) -> None:
        self.sought: list[TopicPartition] = []

    async def seek(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.sought = list(partitions)


async def handle(record: Any) -> None: ...


def reader(consumer: BrokerMetadata, offsets: Offsets) -> AtLeastOnceConsumer:
    return AtLeastOnceConsumer(
        consumer,  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]
        handle,
        service="assigned-topics",
        checkpointed=offsets,  # type: ignore[arg-type]
    )


async def test_a_topic_grown_past_its_declared_partitions_is_read_whole() -> None:
    # The healer's effectiveness ledger assigned range(declared partitions): the partitions
    # an operator added were never read, and nothing said so.
    consumer = BrokerMetadata({"a.v1": {0, 1, 2, 3, 4, 5}, "b.v1": {0}}, late=frozenset({"b.v1"}))
    offsets = Offsets()
    await reader(consumer, offsets).start_assigned_topics(["a.v1", "b.v1"])
    expected = [TopicPartition("a.v1", p) for p in range(6)] + [TopicPartition("b.v1", 0)]
    assert consumer.assigned == expected and offsets.sought == expected
    assert consumer.refreshed == 1  # b.v1 was asked for again, not taken as empty


async def test_a_topic_the_broker_does_not_hold_is_an_error_not_an_empty_read() -> None:
    consumer = BrokerMetadata({"a.v1": {0}})
    with pytest.raises(KafkaError, match=r"holds no partition of topic gone\.v1"):
        await reader(consumer, Offsets()).start_assigned_topics(["a.v1", "gone.v1"])
    assert consumer.assigned == []
