"""A breaker's change is published before any checkpoint that holds it.

:class:`~finops.common.owned_partitions.OwnedPartitions` applies a poll a turn at a time and
releases its lock between two turns, so a rebalance may checkpoint a partition (and forget it)
before :meth:`BreakerShards.after_batch` publishes what the poll changed. Saved unpublished,
a transition would never be announced: the next owner replays from the checkpoint, past it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka.structs import TopicPartition
from stream_fakes import OtherTask, Poll, ScriptedConsumer, after_a_turn, crash_after_first

from finops.common.log_position import ResumePlan
from finops.healer.adapters.breaker_shards import BreakerShards
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.domain.breakers import BreakerConfig

TOPIC = "finops.provider-outcomes.v1"
#: a turn of failures that opens the breaker
PER_TURN = BreakerConfig().min_calls


class Log:
    """What reached the broker and the checkpoint table, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.entries.append(("sent", topic))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def load(self, name: str) -> None:
        return None  # no checkpoint yet

    async def save_at(self, name: str, checkpoint: Any, position: int | None) -> bool:
        self.entries.append(("saved", name))
        return True


def failure(partition: int, offset: int) -> bytes:
    """The outcome at ``offset``: a failure of the one breaker, an event id of its own."""
    return ProviderOutcome(
        str(uuid.UUID(int=offset + 1)), "openai", "gpt-4o", True, 1000.0 + offset, "server_error"
    ).to_json()


async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
    return ResumePlan("cluster", dict(saved))


def breaker_shards(log: Log) -> tuple[ScriptedConsumer, BreakerShards]:
    """The breakers' owners over a consumer of failures; ``log`` is their producer and
    checkpoint store."""
    consumer = ScriptedConsumer(asyncio.Event(), TOPIC, failure)
    shards = BreakerShards(
        consumer,  # type: ignore[arg-type]
        log,  # type: ignore[arg-type]  (the producer)
        log,  # type: ignore[arg-type]  (the checkpoint store)
        config=BreakerConfig(),
        topic=TOPIC,
        resume=resume,
        name="breakers",
        circuits_topic="finops.circuits.v1",
        alerts_topic="finops.alerts.v1",
        published=None,  # type: ignore[arg-type]  (no partition here is an upgraded one)
    )
    return consumer, shards


async def test_a_partition_released_between_two_turns_publishes_its_transitions_first():
    log = Log()
    consumer, shards = breaker_shards(log)
    shards.records_per_turn = PER_TURN
    await shards.adopt({0})
    # a poll of two turns: the first opens the breaker
    consumer.polls = [Poll({0: list(range(2 * PER_TURN))})]
    other = OtherTask()
    other.first = after_a_turn(shards, 0, lambda: shards.release({0}))  # a rebalance
    # the process dies after the rebalance: no after_batch, no tick
    assert await crash_after_first(shards, consumer, other) is None
    assert log.entries == [
        ("sent", "finops.circuits.v1"),
        ("sent", "finops.alerts.v1"),
        ("saved", "breakers:p0"),
    ]
    assert shards.shards == {}
    assert consumer.commits == [{TopicPartition(TOPIC, 0): PER_TURN}]  # the first turn only
