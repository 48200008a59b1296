"""A stream intake catching up on a backlog must leave the event loop to the HTTP API.

aiokafka's ``getmany()`` returns without suspending while records are buffered, so an intake
that only awaits it would run batch after batch while every request waits (the experiments
service's assignment p99 was 715 ms under a backlog). The consumers here never suspend either:
between two batches, a probe task must get its turn.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stream_fakes import BufferedConsumer, NoStore, analysis_intake

from finops.common.circuits import CircuitReader, CircuitTable
from finops.common.consumer import AtLeastOnceConsumer
from finops.common.log_position import ResumePlan
from finops.common.partitions import HANDLE_AT_ONCE
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.domain.engine import OptimizerEngine

BATCHES = 50


async def _probe_turns_while(run: Any, consumer: BufferedConsumer) -> int:
    """How many turns another task gets while ``run`` drains ``consumer``."""
    turns = 0

    async def probe() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    prober = asyncio.create_task(probe())
    await run
    prober.cancel()
    return turns


async def test_experiments_intake_yields_between_batches():
    stop = asyncio.Event()
    consumer = BufferedConsumer("finops.experiment-events.v1", stop, polls=BATCHES)

    async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
        return ResumePlan("cluster", dict(saved))

    intake = analysis_intake(
        consumer, resume=resume, checkpoint_interval_s=3600, refresh_interval_s=3600
    )
    turns = await _probe_turns_while(intake.run(stop), consumer)
    assert consumer.polls == BATCHES
    assert turns >= BATCHES - 1


def optimizer_intake(consumer: BufferedConsumer) -> EventIntake:
    """The optimizer's one-worker intake on ``consumer``, checkpointing nowhere."""
    return EventIntake(
        OptimizerEngine(),
        consumer,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        store=NoStore(),  # type: ignore[arg-type]
        checkpoint_interval_s=3600,
        checkpoint_every_events=10**9,
        experiments_topic="finops.unused.v1",
    )


async def test_optimizer_intake_yields_between_batches():
    stop = asyncio.Event()
    consumer = BufferedConsumer("finops.unused.v1", stop, polls=BATCHES)
    intake = optimizer_intake(consumer)
    turns = await _probe_turns_while(intake.run(stop), consumer)
    assert consumer.polls == BATCHES
    assert turns >= BATCHES - 1


async def test_optimizer_intake_yields_within_a_batch():
    # a catch-up's polls are 2,000 records: the loop gets a turn every HANDLE_AT_ONCE of them
    stop = asyncio.Event()
    consumer = BufferedConsumer("finops.unused.v1", stop, polls=1, per_poll=10 * HANDLE_AT_ONCE)
    intake = optimizer_intake(consumer)
    turns = 0
    turns_seen: list[int] = []  # the probe's turns so far, as each record is applied
    apply = intake.stream.handler

    async def noting_turns(record: Any) -> None:
        turns_seen.append(turns)
        await apply(record)

    async def probe() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    intake.stream.handler = noting_turns
    prober = asyncio.create_task(probe())
    await intake.run(stop)
    prober.cancel()
    assert len(turns_seen) == 10 * HANDLE_AT_ONCE
    records_between_turns = Counter(turns_seen)
    assert max(records_between_turns.values()) == HANDLE_AT_ONCE
    assert len(records_between_turns) == 10


async def test_circuit_reader_yields_between_batches():
    stop = asyncio.Event()
    consumer = BufferedConsumer("finops.circuits.v1", stop, polls=BATCHES, body=b"{}")
    reader = CircuitReader(consumer, "finops.circuits.v1", CircuitTable())  # type: ignore[arg-type]
    turns = await _probe_turns_while(reader.run(stop), consumer)
    assert consumer.polls == BATCHES
    assert turns >= BATCHES - 1


async def test_forwarding_loops_yield_within_a_batch():
    stop = asyncio.Event()
    consumer = BufferedConsumer("agent.error.v1", stop, polls=1, per_poll=10 * HANDLE_AT_ONCE)
    handled: list[int] = []
    flushed: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)

    async def flush() -> None:
        flushed.append(len(handled))

    worker = AtLeastOnceConsumer(
        consumer,  # type: ignore[arg-type]
        None,
        handle,
        service="test",
        max_attempts=1,
        records_per_turn=HANDLE_AT_ONCE,
        flush=flush,
    )
    turns = await _probe_turns_while(worker.run(stop), consumer)
    assert len(handled) == 10 * HANDLE_AT_ONCE
    assert flushed == [10 * HANDLE_AT_ONCE]  # once, after the whole batch
    assert turns >= 9
