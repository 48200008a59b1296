"""The routing decision returned for one request, its alternatives and its reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Objective
from .estimates import Estimates
from .exploration import Choice
from .mechanism import Mechanism
from .scoring import INF

__all__ = ["Decision", "alternatives", "reason_for"]


@dataclass(frozen=True)
class Decision:
    """Routing decision for one request."""

    arm: str
    propensity: float
    expected_quality: float
    expected_cost_usd: float
    expected_latency_ms: float | None
    alternatives: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    reason: str = ""
    task_type: str = ""
    explored: bool = False
    #: why an explored arm was tried (see :class:`.mechanism.Mechanism`); ``None`` if greedy
    exploration: Mechanism | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alternatives"] = [dict(a) for a in self.alternatives]
        d["exploration"] = None if self.exploration is None else str(self.exploration)
        return d


def alternatives(
    arm_keys: Sequence[str], est: Estimates, choice: Choice
) -> tuple[dict[str, Any], ...]:
    """Every arm's estimates, choice probability, feasibility and score."""
    return tuple(
        {
            "arm": arm_keys[i],
            "probability": choice.probs[i],
            "expected_quality": est.quality[i],
            "quality_sd": math.sqrt(est.variance[i]),
            "expected_cost_usd": est.cost[i],
            "p95_latency_ms": est.latency[i],
            "feasible": choice.feasible[i],
            "score": choice.scores[i],
        }
        for i in range(len(arm_keys))
    )


@dataclass(frozen=True)
class PriceState:
    """The price(s) a decision was taken at."""

    price: float
    mu: float
    mu_hi: float
    mu_mix: float
    #: the marginal requests are split between ``mu`` and ``mu_hi``
    mixing: bool
    fleet_target: float | None


def reason_for(
    obj: Objective,
    prices: PriceState,
    choice: Choice,
    chosen: int,
    exploration: Mechanism | None,
    greedy_arm: str,
) -> str:
    """One sentence on why this arm was chosen (``exploration``: what made an explored pick,
    ``None`` for a greedy one)."""
    price = prices.price
    if exploration is not None:
        return f"explore ({exploration}, p={choice.probs[chosen]:.3f}); greedy was {greedy_arm}"
    if choice.relaxed:
        return "no arm meets the constraints: best expected quality"
    if price == INF and obj.wtp_per_usd is None and prices.fleet_target:
        return "cheapest arm: the fleet quality target has slack"
    if price == INF:
        return "cheapest arm meeting the quality/latency constraints"
    if price == 0.0:
        return "best expected quality"
    if obj.wtp_per_usd is not None:
        return f"max quality - {price:.4g} x cost (willingness to pay)"
    if prices.mixing:
        return (
            f"max quality - mu x cost (fleet shadow price mu in [{prices.mu:.4g}, "
            f"{prices.mu_hi:.4g}]/USD, marginal requests split {1 - prices.mu_mix:.2f}/"
            f"{prices.mu_mix:.2f})"
        )
    return f"max quality - mu x cost (fleet shadow price mu={price:.4g}/USD)"
