"""The healer's readiness answers for its own breaker loops, not for another instance's in the
same process (tests and an embedded stack run several)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from finops.common.broker_outage import BrokerOutage
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
            breakers=BreakerPipeline(cast(Any, None), ours, BrokerOutage(60.0, 5.0)),
        )
    )
    try:
        with pytest.raises(RuntimeError, match="stream loops are not running"):
            await _circuits_check(app)
        app.state.breakers = BreakerPipeline(cast(Any, None), theirs, BrokerOutage(60.0, 5.0))
        await _circuits_check(app)  # running: ready
    finally:
        stop.set()
        await theirs


async def test_a_healer_waiting_for_the_broker_is_not_ready_until_a_publish_goes_through():
    """Its loops ride out a frozen broker (up to FINOPS_BROKER_OUTAGE_TOLERANCE_S): /readyz
    says why it is down meanwhile."""
    stop = asyncio.Event()
    loops = asyncio.create_task(stop.wait(), name="healer-breakers")
    outage = BrokerOutage(60.0, 5.0)
    app: Any = SimpleNamespace(
        state=SimpleNamespace(
            circuits=SimpleNamespace(running=True),
            breakers=BreakerPipeline(cast(Any, None), loops, outage),
        )
    )
    try:
        await _circuits_check(app)
        waiter = object()
        outage.started(waiter, "RequestTimedOutError()")
        with pytest.raises(RuntimeError, match=r"waiting for the broker .*RequestTimedOutError"):
            await _circuits_check(app)
        outage.ended(waiter)
        await _circuits_check(app)
    finally:
        stop.set()
        await loops


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
