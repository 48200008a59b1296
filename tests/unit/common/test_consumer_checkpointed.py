"""The consumer's checkpointed option: offsets move with the state, a poison record is parked,
and a dependency failure is raised without parking the record or passing its offset."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stream_fakes import BufferedConsumer

from finops.common.consumer import AtLeastOnceConsumer, CheckpointedState, header_map

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
