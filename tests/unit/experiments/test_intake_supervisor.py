"""The experiments' intake supervisor with fake intakes: a dependency failure under the
intake or while opening a new one is waited out; anything else ends the intake."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from finops.experiments.adapters import intake_supervisor
from finops.experiments.adapters.intake_supervisor import keep_intake_running


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

    async def run(self, stop: asyncio.Event) -> None:
        if self.failure is not None:
            raise self.failure
        await stop.wait()


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_supervisor, "FIRST_PAUSE_S", 0.0)


async def test_a_dependency_failure_opens_a_new_intake_once_the_dependency_answers() -> None:
    first = FakeIntake("first", failure=ConnectionRefusedError("postgres went away"))
    second = FakeIntake("second")
    opened: list[Any] = [KafkaConnectionError("broker still away"), second]
    failures_seen: list[str] = []
    state = SimpleNamespace(intake=first, intake_failure=None)
    stop = asyncio.Event()

    async def reopen() -> FakeIntake:
        failures_seen.append(repr(state.intake_failure))
        answer = opened.pop(0)
        if isinstance(answer, Exception):
            raise answer
        stop.set()  # the test ends once the new intake runs
        return answer

    await keep_intake_running(state, reopen, stop)
    assert state.intake is second
    assert state.intake_failure is None
    assert failures_seen == [
        "ConnectionRefusedError('postgres went away')",
        "KafkaConnectionError('broker still away')",
    ]
    assert (first.consumer.stops, first.forwarder.consumer.stops) == (1, 1)
    assert (second.consumer.stops, second.forwarder.consumer.stops) == (1, 1)


async def test_any_other_failure_ends_the_intake() -> None:
    broken = FakeIntake("broken", failure=ValueError("a bug"))
    state = SimpleNamespace(intake=broken, intake_failure=None)

    async def reopen() -> FakeIntake:
        raise AssertionError("not reopened after a bug")

    with pytest.raises(ValueError, match="a bug"):
        await keep_intake_running(state, reopen, asyncio.Event())
    assert broken.consumer.stops == 1


async def test_no_new_intake_is_opened_once_the_service_stops() -> None:
    failing = FakeIntake("failing", failure=ConnectionRefusedError("down"))
    state = SimpleNamespace(intake=failing, intake_failure=None)
    stop = asyncio.Event()
    stop.set()

    async def reopen() -> FakeIntake:
        raise AssertionError("reopened while stopping")

    await keep_intake_running(state, reopen, stop)
    assert state.intake is failing
    assert repr(state.intake_failure) == "ConnectionRefusedError('down')"
