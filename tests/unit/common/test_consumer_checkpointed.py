"""The consumer's checkpointed option: offsets move with the state, a poison record is parked,
a dependency failure is raised without parking the record or passing its offset, and a
rebalance between two turns of a poll has every record applied once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from stream_fakes import BufferedConsumer, LogConsumer, turns_until

from finops.common.consumer import AtLeastOnceConsumer, CheckpointedState, _SeekToCheckpoint
from finops.common.dead_letters import header_map

TOPIC = "agent.cost.v1"


class CountingState(CheckpointedState):
    def __init__(self) -> None:
        super().__init__(store=None, name="test")  # type: ignore[arg-type]
        self.applied: list[int] = []
        self.batches = 0
        self.saved: list[dict[str, int]] = []

    async def after_batch(self) -> None:
        assert self.lock.locked()
        self.batches += 1

    async def checkpoint(self) -> None:
        async with self.lock:
            self.saved.append(dict(self.offsets))


class Parked:
    """A producer that keeps what is dead-lettered."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **record: Any) -> None:
        self.sent.append({"topic": topic, **record})


def failing_at(offset: int, error: Exception, state: CountingState) -> Any:
    """A handler that applies every record but the one at ``offset``, which raises ``error``."""

    async def handler(record: Any) -> None:
        if record.offset == offset:
            raise error
        state.applied.append(record.offset)

    return handler


def consumer_of(state: CountingState, handler: Any, polls: int, producer: Any) -> Any:
    stop = asyncio.Event()
    source = BufferedConsumer(TOPIC, stop, polls=polls, per_poll=3)
    worker = AtLeastOnceConsumer(
        source,  # type: ignore[arg-type]
        producer,
        handler,
        service="test",
        max_attempts=2,
        retry_backoff_s=0.0,
        checkpointed=state,
    )
    return worker, stop


async def test_offsets_follow_the_records_and_a_poison_one_is_parked_with_its_attempts():
    state, producer = CountingState(), Parked()
    handler = failing_at(2, ValueError("not an event"), state)
    worker, stop = consumer_of(state, handler, polls=2, producer=producer)
    await worker.run(stop)
    assert state.applied == [1, 3, 4, 5, 6]
    assert state.offsets == {f"{TOPIC}:0": 7}
    assert state.batches == 2
    assert state.saved == [{f"{TOPIC}:0": 7}]  # once more at the end
    [parked] = producer.sent
    assert parked["topic"] == f"{TOPIC}.dlq"
    headers = header_map(parked["headers"])
    assert (headers["x-origin-offset"], headers["x-attempts"]) == ("2", "2")
    assert headers["x-error-type"] == "ValueError"
    assert headers["x-service"] == "test"


async def test_a_dependency_failure_is_raised_and_neither_parked_nor_passed():
    state, producer = CountingState(), Parked()
    handler = failing_at(2, ConnectionRefusedError("PostgreSQL is down"), state)
    worker, stop = consumer_of(state, handler, polls=1, producer=producer)
    with pytest.raises(ConnectionRefusedError):
        await worker.run(stop)
    assert state.applied == [1]
    assert state.offsets == {f"{TOPIC}:0": 2}  # the failed record is read again
    assert producer.sent == []


# -- a rebalance between two turns of a poll --------------------------------------------------


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


class Rebalanced:
    """A checkpointed consumer over :class:`LogConsumer` applying 100 records a turn, with
    the listener a group member would have; ``after[(partition, offset)]`` is started as a
    task once that record is applied (under the lock: it runs at the next turn's handover)."""

    def __init__(self, records: dict[int, int], per_poll: int = 2000) -> None:
        self.stop = asyncio.Event()
        self.consumer = LogConsumer(TOPIC, self.stop, records)
        self.state = CountingState()
        self.listener = _SeekToCheckpoint(self.consumer, self.state)
        self.applied: dict[int, list[int]] = {p: [] for p in records}
        self.after: dict[tuple[int, int], Any] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.worker = AtLeastOnceConsumer(
            self.consumer,  # type: ignore[arg-type]
            None,
            self.handle,
            service="test",
            max_attempts=1,
            records_per_turn=100,
            batch_max_records=per_poll,
            checkpointed=self.state,
        )

    async def handle(self, record: Any) -> None:
        self.applied[record.partition].append(record.offset)
        then = self.after.pop((record.partition, record.offset), None)
        if then is not None:
            self.tasks.append(asyncio.create_task(then()))

    async def run(self) -> None:
        await self.worker.run(self.stop)
        await asyncio.gather(*self.tasks)  # each rebalance ran to its end, without raising

    async def rebalance(self, revoked: set[int], assigned: set[int]) -> None:
        await self.listener.on_partitions_revoked({tp(p) for p in revoked})
        await self.listener.on_partitions_assigned({tp(p) for p in assigned})


async def test_a_rebalance_after_the_first_turn_has_the_rest_of_the_poll_read_again_not_twice():
    run = Rebalanced({0: 1000})
    run.after[(0, 99)] = lambda: run.rebalance(revoked={0}, assigned={0})
    await run.run()
    assert run.applied == {0: list(range(1000))}  # no record twice, none missing, in order
    assert run.state.saved[0] == {f"{TOPIC}:0": 100}  # the revoke's checkpoint: the first turn
    assert run.consumer.sought == [(0, 100)]
    assert run.consumer.polls == 3  # 0-999 (100 applied), 100-999 again, nothing
    assert run.state.offsets == {f"{TOPIC}:0": 1000}
    assert run.state.batches == 3


async def test_a_poll_read_before_the_assignment_is_sought_is_dropped_before_its_first_turn():
    """aiokafka calls ``on_partitions_assigned`` once the new assignment is in place; while
    the listener waits for the state's lock (a checkpoint the API asked for holds it), the
    fetcher may reset the position to the group's committed offset, behind the state's, and
    a poll return records from there. The listener seeks first (it waited for the lock
    first): that poll is dropped whole and the records read again from the state's offset."""
    run = Rebalanced({0: 600}, per_poll=300)

    async def rebalance() -> None:
        await run.listener.on_partitions_revoked({tp(0)})
        run.consumer.fetching = fetched = asyncio.Event()
        async with run.state.lock:  # the API's checkpoint, say
            assigned = asyncio.create_task(run.listener.on_partitions_assigned({tp(0)}))
            # the listener waits for the lock, the poll to fetch
            await turns_until(lambda: run.consumer.polls >= 2, "the second poll")
            run.consumer.positions[tp(0)] = 100  # reset to the group's committed offset
            fetched.set()
            # the poll reads 100-399
            await turns_until(lambda: run.consumer.positions[tp(0)] != 100, "the poll's fetch")
        await assigned

    run.after[(0, 299)] = rebalance
    await run.run()
    assert run.applied == {0: list(range(600))}
    assert run.state.saved[0] == {f"{TOPIC}:0": 300}
    assert run.consumer.sought == [(0, 300)]
    assert run.consumer.polls == 4  # 0-299, 100-399 (dropped), 300-599, nothing
    assert run.state.batches == 4


async def test_only_the_partitions_revoked_or_sought_have_the_rest_of_their_records_dropped():
    """A partition neither revoked nor sought keeps its fetch position, already past the
    poll's records: they are applied now or never. (aiokafka revokes every partition at each
    rebalance; this one revokes and assigns partition 1 only.)"""
    run = Rebalanced({0: 500, 1: 500})
    run.after[(0, 99)] = lambda: run.rebalance(revoked={1}, assigned={1})
    await run.run()
    assert run.applied == {0: list(range(500)), 1: list(range(500))}
    assert run.consumer.sought == [(1, 0)]  # the state had none of partition 1: the start
    assert run.consumer.polls == 3  # 0:0-499 and 1:0-499, 1:0-499 again, nothing
    assert run.state.offsets == {f"{TOPIC}:0": 500, f"{TOPIC}:1": 500}


async def test_a_partition_revoked_between_two_turns_gets_none_of_the_rest_applied():
    """Its next owner reads on from the revoke's checkpoint."""
    run = Rebalanced({0: 500, 1: 500})
    run.after[(0, 99)] = lambda: run.rebalance(revoked={0, 1}, assigned={1})
    await run.run()
    assert run.applied == {0: list(range(100)), 1: list(range(500))}
    assert run.state.saved[0] == {f"{TOPIC}:0": 100}
    assert run.state.offsets[f"{TOPIC}:0"] == 100
    assert run.consumer.sought == [(1, 0)]
