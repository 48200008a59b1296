"""The healer's readiness answers for its own breaker loops, not for another instance's in the
same process (tests and an embedded stack run several)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from finops.healer.adapters.circuits_stream import BreakerPipeline
from finops.healer.app import _circuits_check


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
