"""A breaker's change is published before any checkpoint that holds it.

:class:`~finops.common.owned_partitions.OwnedPartitions` applies a poll a turn at a time and
releases its lock between two turns, so a rebalance may checkpoint a partition (and forget it)
before :meth:`BreakerShards.after_batch` publishes what the poll changed. Saved unpublished,
a transition would never be announced: the next owner replays from the checkpoint, past it.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from finops.common.log_position import ResumePlan
from finops.healer.adapters.breaker_shards import BreakerShards
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.domain.breakers import BreakerConfig

TOPIC = "finops.provider-outcomes.v1"


class Log:
    """What reached the broker and the checkpoint table, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.entries.append(("sent", topic))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def save_at(self, name: str, checkpoint: Any, position: int | None) -> bool:
        self.entries.append(("saved", name))
        return True

    async def commit(self, offsets: Any) -> None:
        return None


async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
    return ResumePlan("cluster", dict(saved))


async def test_a_partition_released_between_two_turns_publishes_its_transitions_first():
    log = Log()
    shards = BreakerShards(
        log,  # type: ignore[arg-type]  (the consumer: commits only)
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
    shards.shards[0] = shard = shards.new_shard()
    failures = [
        SimpleNamespace(
            offset=offset,
            value=ProviderOutcome(
                str(uuid.uuid4()), "openai", "gpt-4o", True, 1000.0 + offset, "server_error"
            ).to_json(),
        )
        for offset in range(BreakerConfig().min_calls)
    ]
    # the loop's turn (what OwnedPartitions.run does under the lock), then the rebalance
    async with shards.lock:
        await shards.handle(0, shard, failures)
        shards.offsets[0] = failures[-1].offset + 1
        shards.dirty.add(0)
    assert [t.after.value for t in shard.transitions] == ["open"]
    await shards.release({0})
    assert log.entries == [
        ("sent", "finops.circuits.v1"),
        ("sent", "finops.alerts.v1"),
        ("saved", "breakers:p0"),
    ]
    assert shards.shards == {}
