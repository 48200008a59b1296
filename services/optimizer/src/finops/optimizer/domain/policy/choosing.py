"""One request's choice: the arms' probabilities at the plan's price, and the draw.

With a fractional fleet plan the marginal requests take the cheaper side (price ``mu_hi``) with
probability ``mu_mix``: the choice probabilities are then the mix of those at both prices
(randomised rounding), and the explored pick's mechanism is mixed the same way
(:func:`~.mechanism.mixed_mechanisms`). :class:`~.routing.RoutingPolicy` recommends with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import Objective, PolicyConfig
from .decision import PriceState
from .estimates import Estimates, against_reference
from .exploration import Choice, ExplorationInputs, choice_probs
from .mechanism import mixed_mechanisms
from .planner import FleetPlan
from .scoring import price_for
from .task import TaskState

__all__ = ["Chosen", "choose", "draw"]


@dataclass
class Chosen:
    """Choice probabilities of one request, mixed over the two marginal prices if need be."""

    choice: Choice
    greedy: set[int]  # the greedy arm at each price
    q_greedy: float  # expected quality of the greedy choice (the mix of the two)
    prices: PriceState


def choose(
    cfg: PolicyConfig,
    plan: FleetPlan,
    task: TaskState,
    arm_keys: Sequence[str],
    obj: Objective,
    est: Estimates,
) -> Chosen:
    """Choice probabilities; with a fractional fleet plan the marginal requests take the
    cheaper side (price ``mu_hi``) with probability ``mu_mix`` (randomised rounding)."""
    # switching away from the reference arm (there is one only under a fleet target) is
    # scored at its risk; the quality the planner accounts for stays the plain estimate
    ref_arm = plan.info.get("reference_arm")
    scored = against_reference(est, arm_keys, ref_arm, cfg.switch_risk_z)
    inp = ExplorationInputs(
        cfg,
        task,
        arm_keys,
        obj,
        scored,
        plan.ref_candidates,
        ref_arm,
        plan.info.get("headroom"),
    )
    price = price_for(obj, cfg, plan.mu)
    target = cfg.fleet_quality_target
    mixing = obj.wtp_per_usd is None and target is not None and 0.0 < plan.mu_mix < 1.0
    prices = PriceState(price, plan.mu, plan.mu_hi, plan.mu_mix, mixing, target)
    if not mixing:
        choice = choice_probs(inp, price)
        return Chosen(choice, {choice.greedy}, est.quality[choice.greedy], prices)
    lo = choice_probs(inp, plan.mu)
    hi = choice_probs(inp, plan.mu_hi)
    f = plan.mu_mix
    probs = [(1.0 - f) * p_lo + f * p_hi for p_lo, p_hi in zip(lo.probs, hi.probs, strict=True)]
    g = lo.greedy if (1.0 - f) >= f else hi.greedy
    scores = hi.scores if g == hi.greedy else lo.scores
    q_greedy = (1.0 - f) * est.quality[lo.greedy] + f * est.quality[hi.greedy]
    mixed = Choice(
        probs,
        g,
        scores,
        lo.feasible,
        lo.relaxed,
        mixed_mechanisms(lo.probs, lo.mechanisms, hi.probs, hi.mechanisms, f),
    )
    return Chosen(mixed, {lo.greedy, hi.greedy}, q_greedy, prices)


def draw(probs: Sequence[float], r: float) -> int:
    """Index drawn from ``probs`` with the uniform number ``r`` (the last arm if they fall
    short of ``r`` by rounding)."""
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if r < acc:
            return i
    return len(probs) - 1
