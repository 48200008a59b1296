"""The experiments' intake supervisor with fake intakes: a dependency failure under the
intake or while opening a new one is waited out, with pauses that grow while intakes keep
failing; anything else ends the intake."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from finops.experiments.adapters import intake_supervisor
from finops.experiments.adapters.intake_supervisor import keep_intake_running, restarting_reason

HEALTHY_S = 30.0


class FakeConsumer:
    def __init__(self) -> None:
        self.stops = 0

    async def stop(self) -> None:
        self.stops += 1


class FakeIntake:
    """Runs until ``stop``, or raises ``failure`` at once."""

    def __init__(self, name: str, failure: Exception | None = None) -> None:
        self.name = name
        self.failure = failure
        self.consumer = FakeConsumer()
        self.forwarder = SimpleNamespace(consumer=FakeConsumer())
        self.known: dict[str, Any] = {}

    async def run(self, stop: asyncio.Event) -> None:
        if self.failure is not None:
            raise self.failure
        await stop.wait()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the supervisor takes, none of them waited."""
    taken: list[float] = []

    async def pause(stop: asyncio.Event, seconds: float) -> bool:
        taken.append(seconds)
        return not stop.is_set()

    monkeypatch.setattr(intake_supervisor, "_pause", pause)
    return taken


async def test_intakes_that_fail_at_once_are_reopened_after_growing_pauses(pauses) -> None:
    # a PostgreSQL outage: each new intake opens (the broker answers) and fails when it
    # loads its checkpoints; the broker itself is away once, while a new one opens
    outage = ConnectionRefusedError("postgres went away")
    first = FakeIntake("first", failure=outage)
    first.known["exp-1"] = "the definition of exp-1"
    healthy = FakeIntake("healthy")
    opened: list[Any] = [
        FakeIntake("second", failure=outage),
        KafkaConnectionError("broker away"),
        FakeIntake("third", failure=outage),
        healthy,
    ]
    state = SimpleNamespace(intake=first, intake_failure=None)
    stop = asyncio.Event()

    async def reopen() -> FakeIntake:
        answer = opened.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer is healthy:
            stop.set()  # the test ends once the healthy intake runs
        return answer

    await keep_intake_running(state, reopen, stop, healthy_s=HEALTHY_S)
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    assert state.intake is healthy
    assert healthy.known == {"exp-1": "the definition of exp-1"}
    assert (first.consumer.stops, first.forwarder.consumer.stops) == (1, 1)
    assert (healthy.consumer.stops, healthy.forwarder.consumer.stops) == (1, 1)


async def test_the_intake_is_not_ready_from_its_failure_until_a_new_one_has_run_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(intake_supervisor.time, "monotonic", lambda: now[0])
    failure = ConnectionRefusedError("down")
    idle = SimpleNamespace(intake_failure=None, intake_since=now[0])
    assert restarting_reason(idle, HEALTHY_S) is None
    restarting = SimpleNamespace(intake_failure=failure, intake_since=None)
    assert restarting_reason(restarting, HEALTHY_S) == (
        "the event intake is restarting after ConnectionRefusedError('down')"
    )
    reopened = SimpleNamespace(intake_failure=failure, intake_since=now[0])
    now[0] += HEALTHY_S - 1
    assert restarting_reason(reopened, HEALTHY_S) is not None
    now[0] += 1
    assert restarting_reason(reopened, HEALTHY_S) is None


async def test_an_adoption_the_broker_left_undecided_reopens_the_intake(pauses) -> None:
    # plan_resume raises the broker's error when it reports no end offset for a partition
    # (rather than reading it whole again), the adoption fails and the loop stops on it
    # (OwnedPartitions.run): a new intake is opened, whose adoption plans the resume again.
    undecided = RuntimeError("finops.experiment-events.v1: adopting partitions failed")
    undecided.__cause__ = KafkaTimeoutError()
    failed = FakeIntake("failed", failure=undecided)
    state = SimpleNamespace(intake=failed, intake_failure=None)
    stop = asyncio.Event()
    reopened = FakeIntake("reopened")

    async def reopen() -> FakeIntake:
        stop.set()  # the test ends once the new intake runs
        return reopened

    await keep_intake_running(state, reopen, stop, healthy_s=HEALTHY_S)
    assert state.intake is reopened
    assert state.intake_failure is undecided
    assert pauses == [1.0]


async def test_any_other_failure_ends_the_intake(pauses) -> None:
    broken = FakeIntake("broken", failure=ValueError("a bug"))
    state = SimpleNamespace(intake=broken, intake_failure=None)

    async def reopen() -> FakeIntake:
        raise AssertionError("not reopened after a bug")

    with pytest.raises(ValueError, match="a bug"):
        await keep_intake_running(state, reopen, asyncio.Event(), healthy_s=HEALTHY_S)
    assert broken.consumer.stops == 1
    assert pauses == []


async def test_no_new_intake_is_opened_once_the_service_stops(pauses) -> None:
    failing = FakeIntake("failing", failure=ConnectionRefusedError("down"))
    state = SimpleNamespace(intake=failing, intake_failure=None)
    stop = asyncio.Event()
    stop.set()

    async def reopen() -> FakeIntake:
        raise AssertionError("reopened while stopping")

    await keep_intake_running(state, reopen, stop, healthy_s=HEALTHY_S)
    assert state.intake is failing
    assert restarting_reason(state, HEALTHY_S) == (
        "the event intake is restarting after ConnectionRefusedError('down')"
    )


@pytest.mark.parametrize("drop_after", ["BEGIN", "INSERT"])
async def test_postgres_gone_during_a_checkpoint_save_restarts_the_intake(drop_after) -> None:
    # The analysis saves a checkpoint in a transaction and compresses it on a thread after
    # BEGIN: PostgreSQL going away then (or just before the COMMIT) makes asyncpg raise an
    # InterfaceError from the transaction's end. It is an outage like any other: the intake
    # is reopened from its checkpoints, not ended (the flake of
    # tests/integration/experiments/test_experiments_dependency_faults.py).
    from pg_fakes import DroppingPool

    from finops.common.checkpoints import Checkpoint
    from finops.experiments.adapters.checkpoints import PostgresCheckpointStore

    pool = DroppingPool(drop_after)
    store = PostgresCheckpointStore(pool)
    with pytest.raises(Exception) as raised:
        await store.save("experiments-0", Checkpoint({"n": 1}, {"t:0": 5}), position=5)
    assert [q.split()[0] for q in pool.conn.statements] == ["BEGIN;", "INSERT"][
        : 1 if drop_after == "BEGIN" else 2
    ]  # no COMMIT: the connection was closed
    assert intake_supervisor.dependency_failed(raised.value)
