"""/readyz of the optimizer and the experiments service checks the app's own loops, not the
first task of the same name in the process: two instances in one process (the test suite,
the embedded stack) each have theirs, and a dead one must not read as ready because the
other's runs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from finops.experiments import app as experiments_app
from finops.optimizer import app as optimizer_app
from finops.optimizer.settings import OptimizerSettings


async def _ended(name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(asyncio.sleep(0), name=name)
    await task
    return task


def _app(**state: Any) -> Any:
    return SimpleNamespace(state=SimpleNamespace(**state))


@pytest.mark.parametrize(
    ("check", "task_name", "attribute", "what"),
    [
        ("intake", "optimizer-intake", "intake_task", "the event intake"),
        ("circuits", "optimizer-circuits", "circuits_task", "the circuit-breaker reader"),
    ],
)
async def test_the_optimizers_readiness_sees_its_own_loop_ended(
    check: str, task_name: str, attribute: str, what: str
) -> None:
    namesake = asyncio.create_task(asyncio.Event().wait(), name=task_name)  # another instance's
    try:
        app = _app(**{attribute: await _ended(task_name)})
        checks = optimizer_app._readiness(app, OptimizerSettings())
        with pytest.raises(RuntimeError, match=f"{what} is not running"):
            await checks[check]()
        setattr(app.state, attribute, namesake)  # its own loop running: ready
        assert await checks[check]() is None
    finally:
        namesake.cancel()


async def test_the_experiments_readiness_sees_its_own_intake_ended() -> None:
    namesake = asyncio.create_task(asyncio.Event().wait(), name="experiments-intake")
    try:
        app = _app(intake_task=await _ended("experiments-intake"))
        with pytest.raises(RuntimeError, match="the event intake is not running"):
            await experiments_app._intake_check(app)
    finally:
        namesake.cancel()
