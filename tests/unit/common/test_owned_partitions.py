"""OwnedPartitions' bookkeeping: a shard is loaded and its partition sought when adopted,
checkpointed before it is forgotten, and an offset is committed only once a checkpoint that
covers it is saved."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import TopicPartition
from stream_fakes import OtherTask, Poll, ScriptedConsumer, run_beside, turns_until

from finops.common.log_position import ResumePlan
from finops.common.owned_partitions import OwnedPartitions
from finops.common.partitions import HANDLE_AT_ONCE

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


class Recorder(OwnedPartitions[Seen]):
    """A stage over an in-memory shard store; ``refused`` partitions' saves are refused (a
    checkpoint further along exists)."""

    def __init__(
        self, consumer: ScriptedConsumer, saved: dict[int, SavedShard], **options: Any
    ) -> None:
        async def resume(offsets: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
            return ResumePlan("cluster", dict(offsets))

        super().__init__(consumer, TOPIC, resume=resume, checkpoint_interval_s=3600, **options)  # type: ignore[arg-type]
        self.saved = saved
        self.refused: set[int] = set()
        self.released_shards: dict[int, list[int]] = {}
        #: every save asked for, in order: the partition and the offsets it was given
        self.saves: list[tuple[int, dict[str, int]]] = []

    async def load_shard(self, partition: int) -> tuple[Seen, dict[str, int], str | None]:
        saved = self.saved.get(partition)
        if saved is None:
            return Seen(), {}, None
        return Seen(list(saved.seen)), saved.offsets, saved.cluster_id

    async def save_shard(self, partition: int, shard: Seen, offsets: dict[str, int]) -> bool:
        self.saves.append((partition, dict(offsets)))
        if partition in self.refused:
            return False
        self.saved[partition] = SavedShard(list(shard.offsets), dict(offsets), self.cluster_id)
        return True

    async def handle(self, partition: int, shard: Seen, records: list[Any]) -> None:
        shard.offsets += [record.offset for record in records]

    def released(self, partition: int, shard: Seen) -> None:
        self.released_shards[partition] = shard.offsets


def stage(
    saved: dict[int, SavedShard] | None = None, **options: Any
) -> tuple[Recorder, ScriptedConsumer]:
    """A :class:`Recorder` on a :class:`ScriptedConsumer`; ``options``: OwnedPartitions'."""
    consumer = ScriptedConsumer(asyncio.Event(), TOPIC)
    return Recorder(consumer, saved or {}, **options), consumer


async def test_adopting_loads_each_shard_and_seeks_to_its_saved_offset():
    owner, consumer = stage({0: SavedShard([5, 6], {f"{TOPIC}:0": 7}, "cluster")})
    await owner.adopt({0, 1})
    assert owner.shards == {0: Seen([5, 6]), 1: Seen([])}
    assert owner.offsets == {0: 7}
    assert consumer.sought == {tp(0): 7}
    assert consumer.from_beginning == [tp(1)]  # no checkpoint: read from the beginning
    assert owner.cluster_id == "cluster"


async def test_each_checkpoint_is_checked_against_the_cluster_it_was_saved_on():
    # Checked against the instance's cluster id (the first checkpoint's, or the broker's once
    # one adoption ran), a checkpoint of the broker before it was replaced kept offsets of
    # the old log: the new log's records below them were skipped.
    owner, consumer = stage(
        {
            0: SavedShard([1], {f"{TOPIC}:0": 2}, "new"),
            1: SavedShard([8], {f"{TOPIC}:1": 9}, "old"),
            2: SavedShard([], {f"{TOPIC}:2": 4}, None),  # saved by a version without ids
        }
    )
    asked: list[tuple[dict[str, int], str | None]] = []

    async def resume(offsets: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
        asked.append((dict(offsets), cluster_id))
        kept = {} if cluster_id == "old" else dict(offsets)
        return ResumePlan(
            "new", kept, {key: "cluster changed" for key in offsets if key not in kept}
        )

    owner.resume = resume  # type: ignore[method-assign]
    owner.cluster_id = "new"  # an earlier adoption read the new broker's id
    await owner.adopt({0, 1, 2})
    assert sorted(asked, key=str) == sorted(
        [({f"{TOPIC}:0": 2, f"{TOPIC}:2": 4}, "new"), ({f"{TOPIC}:1": 9}, "old")], key=str
    )
    assert consumer.sought == {tp(0): 2, tp(2): 4}
    assert consumer.from_beginning == [tp(1)]
    assert owner.cluster_id == "new"


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


async def test_a_partition_whose_resume_is_not_planned_is_not_owned_meanwhile():
    # The broker did not say where the partition resumes (plan_resume raised): a shard
    # installed anyway took the records the consumer fetched from the group's offset (or from
    # the log's beginning), unsought, into the restored state, and a checkpoint saved them.
    owner, consumer = stage({0: SavedShard([0, 1, 2], {f"{TOPIC}:0": 3}, "cluster")})
    owner.checkpoint_interval_s = 0  # a checkpoint after every poll

    async def unanswered(offsets: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
        raise KafkaTimeoutError()

    owner.resume = unanswered

    async def assigned() -> None:  # as aiokafka does: what the listener raises is ignored
        with pytest.raises(KafkaTimeoutError):
            await owner.adopt({0})

    consumer.polls = [Poll({0: [0, 1, 2, 3]}, during=assigned)]
    with pytest.raises(RuntimeError) as stopped:
        await owner.run(consumer.stop)
    assert isinstance(stopped.value.__cause__, KafkaTimeoutError)  # the stage retries on it
    assert owner.shards == {}
    assert owner.saved[0] == SavedShard([0, 1, 2], {f"{TOPIC}:0": 3}, "cluster")
    assert consumer.sought == {} and consumer.from_beginning == []
    assert consumer.commits == []


async def test_records_fetched_before_a_new_partition_is_sought_are_applied_once():
    # aiokafka sets the new assignment before it calls the listener, and its fetcher reads on
    # from the group's committed offset: a poll returns those records while adopt holds the
    # lock (loading the checkpoint, planning the resume), then waits for it. Adopt seeks to the
    # checkpoint's offset, from which the next poll reads them again.
    owner, consumer = stage({0: SavedShard([0, 1, 2, 3, 4], {f"{TOPIC}:0": 5}, "cluster")})
    loaded = asyncio.Event()
    load = owner.load_shard

    async def slow_load(partition: int) -> tuple[Seen, dict[str, int], str | None]:
        await loaded.wait()
        return await load(partition)

    owner.load_shard = slow_load  # type: ignore[method-assign]
    adopting: list[asyncio.Task[None]] = []

    async def assigned() -> None:
        adopting.append(asyncio.create_task(owner.adopt({0})))
        await turns_until(owner.lock.locked, "the adoption holding the lock")
        loaded.set()  # the checkpoint is loaded once the poll has returned

    consumer.polls = [Poll({0: [5, 6, 7]}, during=assigned), Poll({0: [5, 6, 7, 8]})]
    await owner.run(consumer.stop)
    await adopting[0]
    assert consumer.sought == {tp(0): 5}
    assert owner.shards[0].offsets == list(range(9))  # 5, 6 and 7 once
    assert owner.saved[0] == SavedShard(list(range(9)), {f"{TOPIC}:0": 9}, "cluster")


# -- turns: a poll's records are applied records_per_turn at a time ---------------------------
# A catch-up's polls are 2,000 records; the API and the consumers' heartbeats share the event
# loop, and a rebalance the lock too: none of them may wait for a whole poll.


class TurnRecorder(Recorder):
    """Notes each record applied (partition, offset, the other task's turns then) and each
    :meth:`after_batch` (whether the lock was held, the records applied by then)."""

    def __init__(self, consumer: ScriptedConsumer, other: OtherTask, **options: Any) -> None:
        super().__init__(consumer, {}, **options)
        self.other = other
        self.applied: list[tuple[int, int, int]] = []
        self.after_batches: list[tuple[bool, int]] = []

    async def handle(self, partition: int, shard: Seen, records: list[Any]) -> None:
        self.applied += [(partition, record.offset, self.other.turns) for record in records]
        await super().handle(partition, shard, records)

    async def after_batch(self) -> None:
        self.after_batches.append((self.lock.locked(), len(self.applied)))
        await super().after_batch()

    def offsets_applied(self, partition: int) -> list[int]:
        return [offset for p, offset, _turns in self.applied if p == partition]


def turn_stage(**options: Any) -> tuple[TurnRecorder, ScriptedConsumer, OtherTask]:
    consumer = ScriptedConsumer(asyncio.Event(), TOPIC)
    other = OtherTask()
    return TurnRecorder(consumer, other, **options), consumer, other


@pytest.mark.parametrize("per_turn", [None, 7])
async def test_a_poll_is_applied_a_turn_at_a_time_every_record_once_in_order(per_turn):
    options = {} if per_turn is None else {"records_per_turn": per_turn}
    owner, consumer, other = turn_stage(**options)  # None: the default
    size = per_turn or HANDLE_AT_ONCE
    assert owner.records_per_turn == size
    await owner.adopt({0, 1})
    consumer.polls = [Poll({0: list(range(1150)), 1: list(range(850))})]  # 2,000 records
    await run_beside(owner, consumer, other)
    # no gap, no repeat, in order
    assert owner.offsets_applied(0) == list(range(1150))
    assert owner.offsets_applied(1) == list(range(850))
    assert owner.shards == {0: Seen(list(range(1150))), 1: Seen(list(range(850)))}
    # the other task had a turn after each turn's records: never more than a turn's between
    between = Counter(turns for _p, _offset, turns in owner.applied)
    assert max(between.values()) == size
    assert len(between) == -(-1150 // size) + -(-850 // size)
    # after_batch once a poll (the scripted one, then the empty one), under the lock, after
    # every turn of its poll
    assert owner.after_batches == [(True, 2000), (True, 2000)]
    assert consumer.commits == [{tp(0): 1150, tp(1): 850}]


def test_a_turn_holds_at_least_one_record():
    with pytest.raises(ValueError):
        stage(records_per_turn=0)


async def test_a_partition_revoked_between_two_turns_leaves_the_rest_to_its_next_owner():
    owner, consumer, other = turn_stage()
    other.first = lambda: owner.release({0})  # a rebalance, as soon as the loop is handed back
    await owner.adopt({0, 1})
    consumer.polls = [Poll({0: list(range(1000)), 1: list(range(1000))})]
    await run_beside(owner, consumer, other)
    # partition 0 went after its first turn: the rest of the poll is not applied here...
    assert owner.offsets_applied(0) == list(range(HANDLE_AT_ONCE))
    assert owner.released_shards == {0: list(range(HANDLE_AT_ONCE))}
    # ...and its checkpoint starts its next owner at the record after the last one applied
    assert owner.saves == [(0, {f"{TOPIC}:0": HANDLE_AT_ONCE}), (1, {f"{TOPIC}:1": 1000})]
    assert owner.saved[0].seen == list(range(HANDLE_AT_ONCE))
    assert consumer.commits == [{tp(0): HANDLE_AT_ONCE}, {tp(1): 1000}]
    # the partition kept is applied whole, once, in order
    assert owner.offsets_applied(1) == list(range(1000))
    assert set(owner.shards) == {1} and owner.offsets == {1: 1000}


async def test_a_partition_adopted_again_between_two_turns_reads_the_rest_from_its_checkpoint():
    owner, consumer, other = turn_stage()

    async def rebalance() -> None:  # taken away and given back: a new shard, sought back
        await owner.release({0})
        await owner.adopt({0})

    other.first = rebalance
    await owner.adopt({0})
    before = owner.shards[0]
    # the poll, then what the consumer, sought back to the checkpoint, reads again
    consumer.polls = [Poll({0: list(range(1000))}), Poll({0: list(range(HANDLE_AT_ONCE, 1000))})]
    await run_beside(owner, consumer, other)
    assert consumer.sought == {tp(0): HANDLE_AT_ONCE}
    assert owner.shards[0] is not before
    assert before.offsets == list(range(HANDLE_AT_ONCE))  # the old shard had one turn
    # the rest of the first poll went to neither shard: read again, it is applied once
    assert owner.offsets_applied(0) == list(range(1000))
    assert owner.shards[0].offsets == list(range(1000))
    assert owner.saves == [(0, {f"{TOPIC}:0": HANDLE_AT_ONCE}), (0, {f"{TOPIC}:0": 1000})]


async def test_a_partition_sought_again_between_two_turns_reads_the_rest_from_there():
    owner, consumer, other = turn_stage()

    async def assigned_again() -> None:  # still owned: its shard kept, sought to its offset
        await owner.adopt({0})

    other.first = assigned_again
    await owner.adopt({0})
    before = owner.shards[0]
    consumer.polls = [Poll({0: list(range(1000))}), Poll({0: list(range(HANDLE_AT_ONCE, 1000))})]
    await run_beside(owner, consumer, other)
    assert consumer.sought == {tp(0): HANDLE_AT_ONCE}
    assert owner.shards[0] is before
    assert owner.offsets_applied(0) == list(range(1000))  # the rest once, as read again


async def test_a_partition_adopted_again_before_its_first_turn_is_not_fed_the_poll_it_missed():
    owner, consumer, other = turn_stage()

    async def rebalance() -> None:  # during partition 0's turns, partition 1 moves and is back
        await owner.release({1})
        await owner.adopt({1})

    other.first = rebalance
    await owner.adopt({0, 1})
    # partition 1 had nothing applied nor saved: adopted again, it is read from its beginning
    consumer.polls = [Poll({0: list(range(300)), 1: list(range(300))}), Poll({1: list(range(300))})]
    await run_beside(owner, consumer, other)
    assert consumer.from_beginning == [tp(0), tp(1), tp(1)]
    assert owner.offsets_applied(0) == list(range(300))
    assert owner.offsets_applied(1) == list(range(300))  # once: from the second poll only
    assert owner.shards == {0: Seen(list(range(300))), 1: Seen(list(range(300)))}
