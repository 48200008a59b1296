"""The simulation's pacing: after a round, every agent's events go out at once, then the run
waits for the optimizer to have read them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from finops.cli.simulation_driver.fleet_run import FleetRun
from finops.cli.simulation_driver.run import Pacing


@dataclass
class FlushTogether:
    """An agent's client whose flush finishes only once every agent's flush has begun: one
    flush awaited after the other would wait forever (a deadline ends the test then)."""

    begun: list[int]
    agents: int
    everyone_in: asyncio.Event
    me: int

    async def flush(self, timeout: float) -> None:
        self.begun.append(self.me)
        if len(self.begun) == self.agents:
            self.everyone_in.set()
        await self.everyone_in.wait()


@dataclass
class CaughtUpOptimizer:
    asked: list[int] = field(default_factory=list)

    async def optimizer_caught_up(self, events: int, timeout_s: float) -> bool:
        self.asked.append(events)
        return True


@dataclass
class RoundDone:
    models_used: dict[str, int]
    experiments: dict[str, Any] = field(default_factory=dict)


async def test_a_rounds_flushes_go_out_together_before_the_optimizer_is_asked():
    begun: list[int] = []
    everyone_in = asyncio.Event()
    clients = [FlushTogether(begun, 4, everyone_in, n) for n in range(4)]
    optimizer = CaughtUpOptimizer()
    pacing = Pacing(api=cast(Any, optimizer), clients=cast(Any, clients), read_before=7, warn=print)

    await asyncio.wait_for(pacing.sync(cast(FleetRun, RoundDone({"a": 3, "b": 2})), 60), 10)

    assert sorted(begun) == [0, 1, 2, 3]
    # asked once, for what was read before the run plus this run's answered calls
    assert optimizer.asked == [7 + 5]
    assert not pacing.given_up
