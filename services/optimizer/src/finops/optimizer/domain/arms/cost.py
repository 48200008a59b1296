"""The expected cost of a request on an arm, linear in its input tokens: :class:`CostModel`;
a model's level kept as it was, for the cost drift detector: :class:`CostLevel`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CostLevel", "CostModel"]


class CostModel:
    """Expected request cost as ``mean_cost + slope * (input_tokens - mean_tokens)``.

    Keeps Welford co-moments of (tokens, cost) for one ``(task_type, arm)``.  The slope is pooled
    over all task types of the arm (a price per token does not depend on the task), see
    :meth:`finops.optimizer.domain.policy.costs.CostBook.expected`.

    Examples
    --------
    >>> cm = CostModel()
    >>> for tok in [100, 200, 300]:
    ...     _ = cm.add(tok, 1e-3 + 1e-5 * tok)
    >>> round(cm.mean_cost, 6), round(cm.cxy / cm.cxx, 8)
    (0.003, 1e-05)
    """

    __slots__ = ("cxx", "cxy", "mean_cost", "mean_tok", "n")

    def __init__(self, n=0.0, mean_tok=0.0, mean_cost=0.0, cxy=0.0, cxx=0.0) -> None:
        self.n = n
        self.mean_tok = mean_tok
        self.mean_cost = mean_cost
        self.cxy = cxy
        self.cxx = cxx

    def add(self, tokens: float | None, cost: float) -> tuple[float, float]:
        """Add one observation; returns the increments of ``(cxy, cxx)``."""
        self.n += 1.0
        dc = cost - self.mean_cost
        self.mean_cost += dc / self.n
        if tokens is None:
            return 0.0, 0.0
        dt = tokens - self.mean_tok
        self.mean_tok += dt / self.n
        dxy = dt * (cost - self.mean_cost)
        dxx = dt * (tokens - self.mean_tok)
        self.cxy += dxy
        self.cxx += dxx
        return dxy, dxx

    def to_state(self) -> list[float]:
        return [self.n, self.mean_tok, self.mean_cost, self.cxy, self.cxx]

    @classmethod
    def from_state(cls, state: list[float]) -> CostModel:
        return cls(*state)


@dataclass(frozen=True)
class CostLevel:
    """A cost model's means of input tokens and cost at one moment, kept as they were: the
    level a cost drift detector compares later costs with (see
    ``PolicyConfig.cost_drift_level_weight``).

    Examples
    --------
    >>> level = CostLevel.of(CostModel(n=100.0, mean_tok=200.0, mean_cost=0.003))
    >>> level.expected(300.0, slope=1e-5)
    0.004
    >>> CostLevel.from_state(level.to_state()) == level
    True
    """

    mean_tok: float
    mean_cost: float

    @classmethod
    def of(cls, model: CostModel) -> CostLevel:
        return cls(model.mean_tok, model.mean_cost)

    def expected(self, tokens: float | None, slope: float) -> float:
        """Expected cost of a request of ``tokens`` input tokens at this level, with the
        arm's current pooled ``slope`` (floored at 5 % of the mean, as
        :meth:`~finops.optimizer.domain.policy.costs.CostBook.expected`)."""
        c = self.mean_cost
        if tokens is not None:
            c += slope * (tokens - self.mean_tok)
        floor = 0.05 * self.mean_cost
        return c if c > floor else floor

    def to_state(self) -> list[float]:
        return [self.mean_tok, self.mean_cost]

    @classmethod
    def from_state(cls, state: list[float]) -> CostLevel:
        mean_tok, mean_cost = state
        return cls(mean_tok, mean_cost)
