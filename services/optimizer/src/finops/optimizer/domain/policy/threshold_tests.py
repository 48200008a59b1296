"""Sequential tests of cheap arms near the quality a fleet target asks for (part of one
request's exploration, :mod:`.exploration`): which arms are still undecided, and the rates
that sample them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .config import PolicyConfig
from .mechanism import Mechanism
from .scoring import phi
from .slack import slack_allowance

if TYPE_CHECKING:  # the exploration module imports this one
    from .exploration import Choice, ExplorationInputs


def near_threshold_tests(inp: ExplorationInputs, choice: Choice) -> None:
    """Sequential tests of cheap arms near the quality the fleet target asks for.

    An arm cheaper than the greedy one may be the saving a target leaves room for (an arm at
    95 % of the best's quality, 15 x cheaper, is the whole saving at a 0.95 target) -- or not.
    Left to Thompson exploration, one unlucky start leaves it looking worse than it is and it
    is rarely sampled again; mixed in forever, it spends quality.  Here each such arm is tested
    for reaching ``target x`` the task's best estimate, with the risk ``threshold_test_risk`` of
    a wrong decision (see :func:`_undecided`), and sampled until the test decides.  The
    undecided arms share the slack budget: the likeliest to pass first, each at the whole rate
    its expected quality loss against the greedy arm allows while the budget lasts (the legacy
    fixed-sample test: shared equally).  These rates are not kept as they are: with the rest of
    the exploration they are then fitted to the slack budget (:func:`.slack.fit_slack`), which
    serves first the arms likeliest to beat the greedy one in quality.
    """
    cfg, est, g = inp.config, inp.est, choice.greedy
    target, risk, share = cfg.fleet_quality_target, cfg.threshold_test_risk, cfg.explore_slack_share
    if target is None or risk is None or share is None:
        return
    qs, vs, cs = est.quality, est.variance, est.cost
    bar = target * max(qs)
    z_of = {i: (qs[i] - bar) / math.sqrt(vs[i]) for i in range(len(qs)) if i != g and cs[i] < cs[g]}
    undecided = [
        i
        for i, z in z_of.items()
        if _undecided(cfg, risk, z, inp.task.arms[inp.arm_keys[i]].quality.n)
    ]
    if not undecided:
        return
    allowance = slack_allowance(cfg, qs[g], inp.headroom)
    anytime = cfg.threshold_test_mixture is not None
    if anytime:
        undecided.sort(key=lambda i: (-z_of[i], i))
    else:
        allowance /= len(undecided)
    for i in undecided:
        loss = qs[g] - qs[i]
        rate = cfg.max_explore_step if loss <= 0.0 else min(allowance / loss, cfg.max_explore_step)
        if anytime:
            allowance -= rate * max(loss, 0.0)
        choice.raise_to(i, rate, Mechanism.THRESHOLD_TEST)


def _undecided(config: PolicyConfig, risk: float, z: float, n: float) -> bool:
    """Whether a threshold test at ``z`` standard deviations from the bar after ``n`` outcomes
    of the arm has not decided yet (see ``PolicyConfig.threshold_test_mixture``).

    Examples
    --------
    >>> config = PolicyConfig(fleet_quality_target=0.95)
    >>> _undecided(config, 0.05, -2.0, 50), _undecided(config, 0.05, -3.5, 50)
    (True, False)
    >>> fixed = PolicyConfig(fleet_quality_target=0.95, threshold_test_mixture=None)
    >>> _undecided(fixed, 0.05, -2.0, 50)
    False
    """
    mixture = config.threshold_test_mixture
    if mixture is None:
        p_reach = phi(z)
        # on a handful of outcomes a normal approximation is trusted to reject an arm only
        # at a far smaller risk (the square of the stated one)
        low = risk * risk if n < config.explore_min_obs else risk
        return low <= p_reach <= 1 - risk
    return abs(z) < anytime_boundary(max(n, 1.0), mixture, risk)


def anytime_boundary(n: float, mixture: float, risk: float) -> float:
    """Two-sided normal-mixture boundary (Robbins; Howard et al., 2021) in standard errors:
    a mean of ``n`` sub-Gaussian outcomes crosses it at any ``n`` with probability at most
    ``risk``.

    Examples
    --------
    >>> [round(anytime_boundary(n, 10.0, 0.05), 2) for n in (10, 100, 1000)]
    [4.02, 3.28, 3.48]
    """
    ratio = n / mixture
    return math.sqrt((1.0 + 1.0 / ratio) * (math.log1p(ratio) + 2.0 * math.log(2.0 / risk)))
