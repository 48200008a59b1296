"""OwnedPartitions' bookkeeping: a shard is loaded and its partition sought when adopted,
checkpointed before it is forgotten, and an offset is committed only once a checkpoint that
covers it is saved."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from finops.common.log_position import ResumePlan
from finops.common.owned_partitions import OwnedPartitions

TOPIC = "finops.owned.v1"


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


@dataclass
class Seen:
    """A shard: the offsets of the records applied to it, in order."""

    offsets: list[int] = field(default_factory=list)


@dataclass
class SavedShard:
    seen: list[int]
    offsets: dict[str, int]
    cluster_id: str | None


@dataclass
class Poll:
    """What one ``getmany`` answers (partition -> record offsets), and the rebalance that
    runs while it waits (as aiokafka runs a listener during a poll)."""

    records: dict[int, list[int]]
    during: Callable[[], Awaitable[None]] | None = None


class ScriptedConsumer:
    """Answers the scripted polls in turn, then asks the loop to stop; remembers every seek
    and commit."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.polls: list[Poll] = []
        self.sought: dict[TopicPartition, int] = {}
        self.from_beginning: list[TopicPartition] = []
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, list[Any]]:
        if not self.polls:
            self.stop.set()
            return {}
        poll = self.polls.pop(0)
        if poll.during is not None:
            await poll.during()
        return {
            tp(partition): [SimpleNamespace(partition=partition, offset=o) for o in offsets]
            for partition, offsets in poll.records.items()
        }

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought[partition] = offset

    async def seek_to_beginning(self, partition: TopicPartition) -> None:
        self.from_beginning.append(partition)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({p: meta.offset for p, meta in offsets.items()})


class Recorder(OwnedPartitions[Seen]):
    """A stage over an in-memory shard store; ``refused`` partitions' saves are refused (a
    checkpoint further along exists)."""

    def __init__(self, consumer: ScriptedConsumer, saved: dict[int, SavedShard]) -> None:
        async def resume(offsets: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
            return ResumePlan("cluster", dict(offsets))

        super().__init__(consumer, TOPIC, resume=resume, checkpoint_interval_s=3600)  # type: ignore[arg-type]
        self.saved = saved
        self.refused: set[int] = set()
        self.released_shards: dict[int, list[int]] = {}

    async def load_shard(self, partition: int) -> tuple[Seen, dict[str, int], str | None]:
        saved = self.saved.get(partition)
        if saved is None:
            return Seen(), {}, None
        return Seen(list(saved.seen)), saved.offsets, saved.cluster_id

    async def save_shard(self, partition: int, shard: Seen, offsets: dict[str, int]) -> bool:
        if partition in self.refused:
            return False
        self.saved[partition] = SavedShard(list(shard.offsets), dict(offsets), self.cluster_id)
        return True

    async def handle(self, partition: int, shard: Seen, records: list[Any]) -> None:
        shard.offsets += [record.offset for record in records]

    def released(self, partition: int, shard: Seen) -> None:
        self.released_shards[partition] = shard.offsets


def stage(saved: dict[int, SavedShard] | None = None) -> tuple[Recorder, ScriptedConsumer]:
    consumer = ScriptedConsumer(asyncio.Event())
    return Recorder(consumer, saved or {}), consumer


async def test_adopting_loads_each_shard_and_seeks_to_its_saved_offset():
    owner, consumer = stage({0: SavedShard([5, 6], {f"{TOPIC}:0": 7}, "cluster")})
    await owner.adopt({0, 1})
    assert owner.shards == {0: Seen([5, 6]), 1: Seen([])}
    assert owner.offsets == {0: 7}
    assert consumer.sought == {tp(0): 7}
    assert consumer.from_beginning == [tp(1)]  # no checkpoint: read from the beginning
    assert owner.cluster_id == "cluster"


async def test_releasing_checkpoints_the_shard_then_forgets_it():
    owner, consumer = stage()
    await owner.adopt({0, 1})
    consumer.polls = [Poll({0: [0, 1, 2], 1: [0]}), Poll({}, during=lambda: owner.release({0}))]
    await owner.run(consumer.stop)
    assert owner.saved[0] == SavedShard([0, 1, 2], {f"{TOPIC}:0": 3}, "cluster")
    assert owner.released_shards == {0: [0, 1, 2]}
    assert set(owner.shards) == {1} and owner.offsets == {1: 1}
    # the release checkpointed every changed partition; nothing changed after it
    assert owner.saved[1] == SavedShard([0], {f"{TOPIC}:1": 1}, "cluster")
    assert consumer.commits == [{tp(0): 3, tp(1): 1}]


async def test_a_refused_save_commits_nothing_for_its_partition():
    owner, consumer = stage()
    await owner.adopt({0, 1})
    owner.refused = {0}
    consumer.polls = [Poll({0: [0, 1], 1: [0, 1, 2, 3]})]
    await owner.run(consumer.stop)
    assert 0 not in owner.saved
    assert owner.saved[1] == SavedShard([0, 1, 2, 3], {f"{TOPIC}:1": 4}, "cluster")
    assert consumer.commits == [{tp(1): 4}]
    assert owner.dirty == set()


async def test_records_of_a_partition_revoked_during_the_poll_are_not_applied():
    owner, consumer = stage()
    await owner.adopt({0, 1})
    consumer.polls = [
        Poll({0: [0], 1: [0]}),
        Poll({0: [1, 2], 1: [1, 2]}, during=lambda: owner.release({1})),
    ]
    await owner.run(consumer.stop)
    # partition 1 was checkpointed at its first record; its next owner reads 1 and 2
    assert owner.saved[1] == SavedShard([0], {f"{TOPIC}:1": 1}, "cluster")
    assert owner.released_shards == {1: [0]}
    assert owner.saved[0] == SavedShard([0, 1, 2], {f"{TOPIC}:0": 3}, "cluster")
    assert consumer.commits == [{tp(0): 1, tp(1): 1}, {tp(0): 3}]


async def test_every_committed_offset_is_the_offset_its_checkpoint_saved():
    owner, consumer = stage({0: SavedShard([9], {f"{TOPIC}:0": 10}, "cluster")})
    owner.checkpoint_interval_s = 0  # checkpoint after every batch
    saved_offsets: list[dict[str, int]] = []
    save = owner.save_shard

    async def remembering(partition: int, shard: Seen, offsets: dict[str, int]) -> bool:
        saved_offsets.append(dict(offsets))
        return await save(partition, shard, offsets)

    owner.save_shard = remembering  # type: ignore[method-assign]
    await owner.adopt({0, 1})
    consumer.polls = [Poll({0: [10, 11], 1: [0]}), Poll({1: [1, 2]}), Poll({0: [12]})]
    await owner.run(consumer.stop)
    assert consumer.commits == [{tp(0): 12, tp(1): 1}, {tp(1): 3}, {tp(0): 13}]
    assert saved_offsets == [
        {f"{TOPIC}:0": 12},
        {f"{TOPIC}:1": 1},
        {f"{TOPIC}:1": 3},
        {f"{TOPIC}:0": 13},
    ]
    assert owner.shards == {0: Seen([9, 10, 11, 12]), 1: Seen([0, 1, 2])}


async def test_a_checkpoint_the_database_cannot_take_is_tried_again_and_commits_nothing_meanwhile():
    owner, consumer = stage()
    owner.checkpoint_interval_s = 0
    down = {"now": True}
    save = owner.save_shard

    async def flaky(partition: int, shard: Seen, offsets: dict[str, int]) -> bool:
        if down["now"]:
            raise ConnectionRefusedError("PostgreSQL is down")
        return await save(partition, shard, offsets)

    async def recover() -> None:
        down["now"] = False

    owner.save_shard = flaky  # type: ignore[method-assign]
    await owner.adopt({0})
    consumer.polls = [Poll({0: [0, 1]}), Poll({0: [2]}, during=recover)]
    await owner.run(consumer.stop)
    # the first checkpoint failed: nothing committed then; the loop went on learning
    assert owner.shards == {0: Seen([0, 1, 2])}
    assert consumer.commits == [{tp(0): 3}]
    assert owner.saved[0] == SavedShard([0, 1, 2], {f"{TOPIC}:0": 3}, "cluster")


async def test_a_failed_adoption_stops_the_loop_instead_of_skipping_the_partition():
    owner, consumer = stage()

    async def broken(partition: int) -> tuple[Seen, dict[str, int], str | None]:
        raise ValueError("checkpoint table missing")

    owner.load_shard = broken  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        await owner.adopt({0})
    consumer.polls = [Poll({0: [0]})]
    with pytest.raises(RuntimeError) as stopped:
        await owner.run(consumer.stop)
    assert isinstance(stopped.value.__cause__, ValueError)
    assert consumer.polls == [Poll({0: [0]})]  # it stopped before reading anything
