"""The healer's readiness answers for its own breaker loops, not for another instance's in the
same process (tests and an embedded stack run several)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from finops.healer.adapters.circuits_stream import BreakerPipeline
from finops.healer.app import _circuits_check, _readiness


async def _ended() -> None:
    return None


async def test_an_instance_whose_breaker_loops_ended_is_not_ready_beside_a_running_one() -> None:
    ours = asyncio.create_task(_ended(), name="healer-breakers")
    await ours
    stop = asyncio.Event()
    theirs = asyncio.create_task(stop.wait(), name="healer-breakers")  # another instance's
    app: Any = SimpleNamespace(
        state=SimpleNamespace(
            circuits=SimpleNamespace(running=True),
            breakers=BreakerPipeline(cast(Any, None), ours),
        )
    )
    try:
        with pytest.raises(RuntimeError, match="stream loops are not running"):
            await _circuits_check(app)
        app.state.breakers = BreakerPipeline(cast(Any, None), theirs)
        await _circuits_check(app)  # running: ready
    finally:
        stop.set()
        await theirs


@pytest.mark.parametrize(
    ("check", "loop", "message"),
    [
        ("outcomes", "outcome_loop", "the outcome intake is not running"),
        ("labels", "label_refresh", "the label refresh is not running"),
    ],
)
async def test_an_ended_outcome_intake_or_label_refresh_makes_the_healer_not_ready(
    check: str, loop: str, message: str
) -> None:
    """With FINOPS_EXIT_ON_LOOP_FAILURE off the process outlives the loop, and /readyz must say
    so (docs/settings.md); it checked only the breakers' loops and the circuits reader."""
    ended = asyncio.create_task(_ended())
    await ended
    app: Any = SimpleNamespace(state=SimpleNamespace(**{loop: ended}))
    checks = _readiness(app)
    assert check in checks
    with pytest.raises(RuntimeError, match=message):
        await checks[check]()
