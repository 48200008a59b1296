"""A cost drift detector input tried and not kept, for ``bench/drift.py``: the log-cost
residual against the cost model's level kept as it was when the detector settled.

Against the learning cost model, a running mean of every call since the (re)start, a rise
soon after the start fades from the residual (the model takes in half of it within ~300
calls) before the ranks have the evidence. Against the level frozen when the detector
settles (the task's means of input tokens and cost at its 100th residual, kept until the
next alarm, with the arm's current pooled slope for the prompt's size) it does not fade.
It is not in the policy: one backtest replay (the one-task set at 0.9, seed 4) raised a cost
alarm with it, the router's choice of prompts for an arm drifting its residual (see
docs/optimizer.md). Nor is a reference halfway (in log) between the frozen level and the
learning model (``FrozenLevels(weight=0.5)``), measured after that replay. Routing is the
same either way: only the detector's input differs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from finops.optimizer.domain.arms import ArmStats, RankDriftMonitor
from finops.optimizer.domain.policy import routing
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.learning import DriftSignal

__all__ = ["CostLevel", "FrozenLevels", "policy_with_frozen_levels"]


@dataclass(frozen=True)
class CostLevel:
    """A cost model's means of input tokens and cost at one moment."""

    mean_tok: float
    mean_cost: float

    def expected(self, tokens: float | None, slope: float) -> float:
        """Expected cost at this level of ``tokens`` input tokens, with the arm's current
        ``slope``, floored at 5 % of the mean as ``CostBook.expected``."""
        c = self.mean_cost
        if tokens is not None:
            c += slope * (tokens - self.mean_tok)
        floor = 0.05 * self.mean_cost
        return c if c > floor else floor


class FrozenLevels:
    """The level each arm's detector compares costs with, by the arm's ``ArmStats`` (its
    slots leave no room; the stats are kept alive here so their ids stay theirs).

    ``weight`` 1: the residual is against the frozen level; below 1, against the weighted
    geometric mean of the frozen level's expected cost and the learning model's (0.5:
    halfway in log, a reference that takes in half as much of a change).
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight
        self._levels: dict[int, tuple[ArmStats, CostLevel]] = {}

    def learn_cost(
        self, costs: CostBook, arm: str, st: ArmStats, tokens: float | None, cost: float
    ) -> DriftSignal | None:
        """``learning.learn_cost`` with the residual taken against the frozen level once the
        (rank) detector settled; the level is dropped on an alarm and taken again when the
        restarted detector settles."""
        c_hat = costs.expected(arm, st, tokens) if st.cost.n > 0 else None
        costs.learn(arm, st, tokens, cost)
        if c_hat is None or cost <= 0 or c_hat <= 0:
            return None
        kept = self._levels.get(id(st))
        c_ref = c_hat
        if kept is not None:
            frozen = kept[1].expected(tokens, costs.slope(arm))
            c_ref = frozen**self.weight * c_hat ** (1.0 - self.weight)
        monitor = st.cost_drift
        if monitor.update(math.log(cost / c_ref)):
            costs.restart(arm, st, tokens, cost)
            self._levels.pop(id(st), None)
            return DriftSignal("cost", monitor.last_direction, c_hat, cost)
        settled = isinstance(monitor, RankDriftMonitor) and monitor._seen >= monitor.settle
        if kept is None and settled:
            self._levels[id(st)] = (st, CostLevel(st.cost.mean_tok, st.cost.mean_cost))
        return None


@contextmanager
def policy_with_frozen_levels(weight: float = 1.0) -> Iterator[None]:
    """Within it, the routing policy learns costs with a fresh :class:`FrozenLevels`."""
    saved = routing.learn_cost
    routing.learn_cost = FrozenLevels(weight).learn_cost
    try:
        yield
    finally:
        routing.learn_cost = saved
