"""Expected cost per arm: the task's own cost model, pooled across task types, or a hint."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arms import ArmStats, CostModel

__all__ = ["CostBook", "PooledCost", "fill_unknown"]


@dataclass
class PooledCost:
    """An arm's cost model over every task type, and the summed token/cost co-moments of the
    per-task models (the pooled slope of cost in input tokens)."""

    model: CostModel = field(default_factory=CostModel)
    cxy: float = 0.0
    cxx: float = 0.0

    def slope(self) -> float:
        return self.cxy / self.cxx if self.cxx > 0 else 0.0


@dataclass
class CostBook:
    """Pooled cost models per arm and operator-given cost hints (used until a cost is seen)."""

    pooled: dict[str, PooledCost] = field(default_factory=dict)
    hints: dict[str, float] = field(default_factory=dict)

    def slope(self, arm: str) -> float:
        pc = self.pooled.get(arm)
        return 0.0 if pc is None else pc.slope()

    def expected(self, arm: str, st: ArmStats, tokens: float | None) -> float | None:
        """Expected cost (USD) of one request of ``tokens`` input tokens on this task's arm;
        ``None`` for an arm never seen and without a list price (see :func:`fill_unknown`)."""
        cm = st.cost
        if cm.n <= 0:
            pc = self.pooled.get(arm)
            if pc is None or pc.model.n <= 0:
                return self.hints.get(arm)
            cm = pc.model
        c = cm.mean_cost
        if tokens is not None and cm.cxx >= 0:
            c += self.slope(arm) * (tokens - cm.mean_tok)
        floor = 0.05 * cm.mean_cost
        return c if c > floor else floor

    def learn(self, arm: str, st: ArmStats, tokens: float | None, cost: float) -> None:
        pc = self.pooled.get(arm)
        if pc is None:
            pc = self.pooled[arm] = PooledCost()
        pc.model.add(tokens, cost)
        dxy, dxx = st.cost.add(tokens, cost)
        pc.cxy += dxy
        pc.cxx += dxx

    def restart(self, arm: str, st: ArmStats, tokens: float | None, cost: float) -> None:
        """After a cost drift: the task's model starts again from this observation."""
        pc = self.pooled[arm]
        pc.cxy -= st.cost.cxy
        pc.cxx -= st.cost.cxx
        st.cost = CostModel()
        st.cost.add(tokens, cost)


def fill_unknown(costs: list[float | None]) -> list[float]:
    """Costs with the unknown ones set to the dearest known cost (0 if none is known).

    An arm never called and without a list price is not free: priced as the dearest arm it
    is explored for its quality only, and one call tells its cost.

    >>> fill_unknown([0.002, None, 0.01])
    [0.002, 0.01, 0.01]
    >>> fill_unknown([None, None])
    [0.0, 0.0]
    """
    known = [c for c in costs if c is not None]
    dearest = max(known) if known else 0.0
    return [dearest if c is None else c for c in costs]
