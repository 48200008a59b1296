"""The exploration budget from the quality slack: how much expected quality per request
exploring may give up against the greedy arm under a fleet quality target, and how it is
shared among the arms expected to lose it (the likeliest to beat the greedy arm first).

A 1 % target leaves 1 % of the quality to lose: trying ten weak arms at a fixed rate would
spend several times that.  :mod:`.exploration` asks these functions what an arm may get.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..arms import ArmStats
from .config import PolicyConfig
from .estimates import Estimates
from .scoring import phi

__all__ = ["drift_floor", "fit_slack", "looks", "slack_allowance"]


def slack_allowance(config: PolicyConfig, q_greedy: float, headroom: float | None) -> float:
    """Expected quality per request exploration may give up against the greedy arm:
    ``explore_slack_share`` of the slack ``(1 - target) x q_greedy`` the fleet target leaves --
    or of the plan's ``headroom`` when that is less (``slack_from_headroom``).

    Examples
    --------
    >>> config = PolicyConfig(fleet_quality_target=0.99)
    >>> round(slack_allowance(config, 0.8, None), 6)  # a fifth of 1 % of 0.8
    0.0016
    >>> round(slack_allowance(config, 0.8, 0.004), 6)  # 0.6 % of the slack already spent
    0.00064
    >>> slack_allowance(config, 0.8, -0.01)  # behind the target: nothing left to explore
    0.0
    """
    target, share = config.fleet_quality_target, config.explore_slack_share
    assert target is not None and share is not None
    slack = max(1.0 - target, 0.0)
    if config.slack_from_headroom and headroom is not None and headroom < slack:
        slack = max(headroom, 0.0)
    return share * slack * q_greedy


def drift_floor(
    config: PolicyConfig, est: Estimates, g: int, headroom: float | None = None
) -> float:
    """Exploration floor of a task right after a drift: ``drift_explore_floor``, or with a
    fleet target (``drift_explore_from_slack``) at most what the slack budget pays for when
    the floor is spread over the other arms at their mean expected quality loss.

    Examples
    --------
    >>> est = Estimates([0.8, 0.7, 0.5], [0.01] * 3, [1.0] * 3, [None] * 3)
    >>> round(drift_floor(PolicyConfig(fleet_quality_target=0.99), est, 0), 4)
    0.008
    >>> drift_floor(PolicyConfig(fleet_quality_target=0.7), est, 0)
    0.2
    >>> legacy = PolicyConfig(fleet_quality_target=0.99, drift_explore_from_slack=False)
    >>> drift_floor(legacy, est, 0)
    0.2
    """
    floor = config.drift_explore_floor
    if (
        not config.drift_explore_from_slack
        or config.fleet_quality_target is None
        or config.explore_slack_share is None
    ):
        return floor
    qs = est.quality
    loss = sum(max(qs[g] - q, 0.0) for i, q in enumerate(qs) if i != g) / (len(qs) - 1)
    allowance = slack_allowance(config, qs[g], headroom)
    return floor if loss * floor <= allowance else allowance / loss


def looks(config: PolicyConfig, st: ArmStats) -> float:
    """How much an arm has been seen on a task, against ``first_look``: its own outcomes, plus
    the pseudo-observations of its prior when that prior was fitted across the family's task
    types -- its strength is not the default smoothing's (``first_look_counts_prior``).

    A prior resting on the default alone says nothing about what exploring the arm gives up;
    one fitted on sibling task types does: with twenty prompts per task type and a 1 % slack,
    three free looks of a known-weaker arm on every task type spend more than the target leaves.

    Examples
    --------
    >>> from finops.optimizer.domain.arms import ArmStats
    >>> config = PolicyConfig(default_prior_strength=2.0)
    >>> st = ArmStats()
    >>> st.prior = (0.7, 2.0, 0.2)  # the default smoothing: no looks
    >>> looks(config, st)
    0.0
    >>> st.prior = (0.7, 12.0, 0.2)  # pooled from sibling task types
    >>> looks(config, st)
    12.0
    >>> st.prior = (0.7, 1.0, 0.2)  # pooled, from task types that disagree
    >>> looks(config, st)
    1.0
    """
    n = st.quality.n
    if not config.first_look_counts_prior:
        return n
    _p0, m, _v0 = st.effective_prior()
    return n if m == config.default_prior_strength else n + m


def fit_slack(
    config: PolicyConfig,
    est: Estimates,
    g: int,
    probs: list[float],
    floor: float,
    first_look: Sequence[float],
    allowance: float,
) -> None:
    """Scale down the arms that are expected to lose quality against the greedy one so that
    exploration spends at most ``explore_slack_share`` of the slack the fleet target leaves.

    A 1 % target leaves 1 % of the quality to lose: trying ten weak arms at a fixed rate
    would spend several times that.  Arms expected to be as good as the greedy one cost no
    quality and are not scaled; the others keep the exploration floor ``floor`` (every
    propensity stays positive for off-policy evaluation).  An arm's first ``first_look``
    looks on a task (see :func:`looks`) are not scaled (``first_look``: their probabilities):
    an estimate resting on the prior alone says nothing about the quality exploring it gives
    up, and an arm never tried may be the best one, against which the target is measured.
    How the rest of the allowance is shared: see ``PolicyConfig.slack_to_likely_better``.
    """
    qs = est.quality
    lossy = [i for i in range(len(qs)) if i != g and qs[i] < qs[g]]
    spent = sum(probs[i] * (qs[g] - qs[i]) for i in lossy)
    if spent <= allowance:
        return
    kept = [max(floor, looked) for looked in first_look]
    scale_down = allowance / spent
    scaled = {i: max(probs[i] * scale_down, kept[i]) for i in lossy}
    if config.slack_to_likely_better:
        budget = sum(scaled[i] * (qs[g] - qs[i]) for i in lossy)
        _spend_on_likely_better(est, g, probs, kept, lossy, budget)
        return
    for i in lossy:
        probs[i] = scaled[i]


def _spend_on_likely_better(
    est: Estimates,
    g: int,
    probs: list[float],
    kept: Sequence[float],
    lossy: Sequence[int],
    budget: float,
) -> None:
    """Share the quality ``budget`` among the lossy arms by their chance of beating the greedy
    arm per unit of quality they are expected to give up, the likeliest first: each keeps its
    whole exploration rate while the budget lasts, the one at the margin gets what is left,
    the others only ``kept`` (floor, first looks).  ``budget`` is what scaling every arm down
    alike would spend (the slack allowance, or the floors and first looks when they alone
    exceed it): the same quality, spent where it may find a better arm.

    Scaling every arm down alike spreads a 1 % slack so thin over eleven arms that none is
    sampled often enough to tell: the top arms after an unlucky start stay unrecognised for
    thousands of requests while the greedy pick, say an arm 5 % worse, holds the traffic.  The
    arms that cannot be better than the greedy one had most of that budget and buy nothing
    with it: a pick that may find a better arm is what exploration is for.

    Examples
    --------
    >>> est = Estimates([0.8, 0.78, 0.4], [0.0004, 0.01, 0.01], [1.0, 1.0, 1.0], [None] * 3)
    >>> probs = [0.0, 0.2, 0.2]
    >>> _spend_on_likely_better(est, 0, probs, [0.0, 0.001, 0.001], [1, 2], 0.005)
    >>> [round(p, 4) for p in probs]  # the near arm keeps its rate, the weak one what is left
    [0.0, 0.2, 0.0025]
    """
    qs, vs = est.quality, est.variance
    loss = {i: qs[g] - qs[i] for i in lossy}
    base = {i: min(probs[i], kept[i]) for i in lossy}
    left = budget - sum(base[i] * loss[i] for i in lossy)
    for i in sorted(lossy, key=lambda i: (-_chance_better(qs, vs, i, g) / loss[i], i)):
        extra = (probs[i] - base[i]) * loss[i]
        if extra <= max(left, 0.0):
            left -= extra
            continue
        probs[i] = base[i] + (probs[i] - base[i]) * max(left, 0.0) / extra
        left = 0.0


def _chance_better(qs: Sequence[float], vs: Sequence[float], i: int, g: int) -> float:
    """Probability that arm ``i``'s quality exceeds arm ``g``'s (Gaussian posteriors)."""
    scale = math.sqrt(vs[i] + vs[g])
    return phi((qs[i] - qs[g]) / scale) if scale > 0.0 else 0.0
