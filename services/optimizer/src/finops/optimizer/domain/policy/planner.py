"""Fleet planner: the shadow price of quality that holds a fleet-wide quality target.

With ``fleet_quality_target = T`` the realised quality of all routed requests must stay at
``>= T x`` the quality the best single arm (the *reference*, below) would
have delivered on the same requests.  Every ``replan_every`` updates the policy re-plans ``mu``:

1. *Reference.*  For each arm the counterfactual total is the quality it delivered where it
   served plus, on requests it did not serve, its task mean (raised by ``ref_optimism`` posterior
   sds: adaptively sampled means are biased low) plus the calibrated residuals of those prompts.
   The aim is ``T`` times an *upper confidence bound* of the reference total over its
   estimate: the reference arm's own bound, and those of arms never observed (known by their
   prior alone; ``aim_margin_of_reference``).  The largest bound over every arm (the legacy
   setting) is set, with a dozen arms, by the one with the thinnest evidence: it held the aim
   at 0.98-1 -- a saturated plan at price 0 -- through the first third of a 2,160-request
   history (twelve arms, one task type).  Arms with some evidence that may still be the best
   are left to identification and reference-candidate trials (see :mod:`.exploration`).
   *Reference audits* (see :mod:`.exploration`) keep that estimate honest where the policy has
   moved away from the reference arm.  Which arm is the reference: :mod:`.reference` (the
   highest total at a lower confidence bound, unless that arm is the cheaper one).
2. *Pacing.*  The realised policy quality is known exactly; the surplus / deficit against the
   aim is spread over a horizon of ``pacing_horizon`` x the traffic seen so far, and the
   expected loss of exploratory picks is added.
3. *Dual solve.*  On a window of recent requests (a sample of future traffic) every request's
   arms form a cost/quality hull; the breakpoints ``delta quality / delta cost`` are sorted and
   ``mu`` is set where the cumulative quality loss reaches the budget -- the exact Lagrangian
   relaxation of "minimise cost s.t. fleet quality >= target".  Requests at the marginal
   breakpoint are split by randomised rounding (``mu`` / ``mu_hi`` with probability ``mu_mix``);
   when the target is slack ``mu = inf``.

``mu`` is in quality per USD and chosen by a sort: nothing depends on the cost scale or on the
number of arms, and there is no learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Objective, PolicyConfig
from .dual_solve import WindowHull, add_request, solve_price
from .estimates import Estimates, against_reference
from .reference import choose_reference
from .scoring import phi
from .task import TaskState
from .totals import RefTotal, reference_totals

__all__ = [
    "FleetPlan",
    "FleetPrice",
    "PlanShare",
    "PlanWindow",
    "PlannedRequest",
    "RefTotal",
    "plan_fleet_price",
    "reference_totals",
]

#: estimates of a task's arms for one request's features
Estimator = Callable[[TaskState, Sequence[str], Mapping[str, float] | None], Estimates]


@dataclass(frozen=True)
class PlannedRequest:
    """A recent request in the planning window."""

    task_type: str
    features: dict[str, float] | None


@dataclass
class PlanWindow:
    """Ring buffer of the most recent ``size`` requests (the planning sample)."""

    size: int
    items: list[PlannedRequest] = field(default_factory=list)
    pos: int = 0

    def add(self, request: PlannedRequest) -> None:
        if len(self.items) < self.size:
            self.items.append(request)
        else:
            self.items[self.pos] = request
            self.pos = (self.pos + 1) % self.size

    def chronological(self) -> list[PlannedRequest]:
        """Oldest first (a restored policy must sum in the same order)."""
        return self.items[self.pos :] + self.items[: self.pos]


@dataclass
class FleetPlan:
    """The planner's state: shadow price(s), exploration loss, reference candidates."""

    mu: float = 0.0  # shadow price of quality (quality per USD)
    mu_hi: float = 0.0  # price applied to the fraction ``mu_mix`` of marginal requests
    mu_mix: float = 0.0
    xloss: float = 0.0  # EW mean expected exploration loss per request (quality units)
    xloss_w: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    ref_candidates: set[str] = field(default_factory=set)  # arms that may still be the best

    def record_exploration_loss(self, x_loss: float, window: int) -> None:
        w = 1.0 / window
        self.xloss = (1.0 - w) * self.xloss + w * x_loss
        self.xloss_w = (1.0 - w) * self.xloss_w + w

    def exploration_rate(self) -> float:
        """Expected quality given up by exploratory picks, per request (its EW mean)."""
        return self.xloss / self.xloss_w if self.xloss_w > 0 else 0.0

    def install(self, price: FleetPrice | None, tasks: Mapping[str, TaskState]) -> None:
        """Serve with ``price``; set the audits of the task types of ``tasks`` it planned.

        ``None`` (nothing to plan against yet) zeroes the price and keeps the rest."""
        if price is None:
            self.mu = self.mu_hi = self.mu_mix = 0.0
            return
        self.mu, self.mu_hi, self.mu_mix = price.mu, price.mu_hi, price.mu_mix
        self.ref_candidates = set(price.ref_candidates)
        self.info = dict(price.info)
        for task_type, task in tasks.items():
            audit = price.audits.get(task_type)
            if audit is not None:
                task.audit = audit


@dataclass(frozen=True)
class PlanShare:
    """One policy's share of a fleet plan: what it learned, and how it estimates.

    ``tasks`` holds only the task types this policy learns (they are disjoint between the
    shares of one plan); ``exploration_loss`` is the expected quality its exploratory picks
    give up per request; ``updates`` the outcomes it has learned from.
    """

    tasks: Mapping[str, TaskState]
    window: PlanWindow
    estimate: Estimator
    objective_of: Callable[[str], Objective]
    exploration_loss: float
    updates: int

    def traffic(self) -> int:
        """Outcomes learned on the task types that have arms (the fleet's accounting)."""
        return sum(t.n for t in self.tasks.values() if t.arms)


@dataclass(frozen=True)
class FleetPrice:
    """A planned shadow price: what a :class:`FleetPlan` serves with.

    ``audits`` holds, per task type planned, the value of one more observation of the
    reference arm there (:attr:`.TaskState.audit`).
    """

    mu: float
    mu_hi: float
    mu_mix: float
    ref_candidates: frozenset[str]
    info: dict[str, Any]
    audits: dict[str, float]


def plan_fleet_price(config: PolicyConfig, shares: Sequence[PlanShare]) -> FleetPrice | None:
    """One shadow price holding ``config.fleet_quality_target`` over every share's traffic.

    The task states are united, the planning windows merged (each share contributes its most
    recent requests in proportion to its traffic, up to ``config.plan_window``), each request is
    estimated by its own share, and the exploration loss is traffic-weighted.  With one share
    this is exactly that policy's own plan.  ``None`` when there is no reference to plan
    against yet.

    Examples
    --------
    >>> from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
    >>> config = PolicyConfig(fleet_quality_target=0.9)
    >>> policy = RoutingPolicy(config, default_arms=["big|p|c", "small|p|c"])
    >>> for i in range(40):
    ...     _ = policy.update("qa", "big|p|c", None, 1.0, 0.01)
    ...     _ = policy.update("qa", "small|p|c", None, float(i % 4 != 0), 0.001)
    >>> policy.replan()
    >>> price = plan_fleet_price(config, [policy.plan_share()])
    >>> price.mu == policy.mu, price.info["reference_arm"], price.info["updates"]
    (True, 'big|p|c', 80)
    >>> plan_fleet_price(config, []) is None
    True
    """
    target = config.fleet_quality_target
    assert target is not None
    tasks: dict[str, TaskState] = {}
    for share in shares:
        tasks.update(share.tasks)
    tots = reference_totals(config, tasks)
    n_tot = sum(t.n for t in tasks.values() if t.arms)
    q_pol = sum(t.q_sum for t in tasks.values() if t.arms)
    ref_key = choose_reference(config, tots, tasks) if tots else ""
    ref = tots[ref_key].total if tots else 0.0
    if not tots or n_tot <= 0 or ref <= 0:
        return None
    ref_arm = ref_key or None
    var = tots[ref_key].variance
    aim, t_eff = _paced_ratio(config, target, tots, tots[ref_key], n_tot, q_pol)
    # greedy choices must also cover the expected loss of exploratory picks
    x_rate = sum(s.exploration_loss * (s.traffic() / n_tot) for s in shares)
    t_plan = t_eff + x_rate * n_tot / ref
    hull = _window_hull(
        _merged_window(config.plan_window, shares, n_tot), ref_arm, config.switch_risk_z
    )
    mu, mu_hi, mu_mix = solve_price(hull, t_plan)
    info = {
        "updates": sum(s.updates for s in shares),
        "reference_arm": ref_arm,
        "estimated_quality_ratio": q_pol / ref,
        "ratio_se": math.sqrt(var) / ref,
        "aim": aim,
        "paced_ratio": t_eff,
        "planned_ratio": t_plan,
        "exploration_loss": x_rate,
        "mu": mu,
        "mu_hi": mu_hi,
        "marginal_split": mu_mix,
    }
    if config.slack_from_headroom and hull.ref_q > 0.0:
        info["headroom"] = _headroom(config, target, hull, ref, n_tot, q_pol)
    audits = _plan_audits(config, tasks, ref_arm, target, var)
    candidates = frozenset(_ref_candidates(config, tots, ref_key))
    return FleetPrice(mu, mu_hi, mu_mix, candidates, info, audits)


def _paced_ratio(
    config: PolicyConfig,
    target: float,
    tots: Mapping[str, RefTotal],
    reference: RefTotal,
    n_tot: int,
    q_pol: float,
) -> tuple[float, float]:
    """The quality ratio to aim at, and the ratio to plan for once the surplus or deficit so
    far is paced out over the horizon.

    The aim is ``target`` times an upper bound of the reference total over its estimate: the
    reference arm's own and those of arms never observed (``aim_margin_of_reference``), else
    the largest over every arm."""
    z = config.target_z
    ref = reference.total
    if config.aim_margin_of_reference:
        # an arm never observed is known by its prior alone: the target still holds against it
        ref_ucb = max(
            [ref + z * math.sqrt(reference.variance)]
            + [t.total + z * math.sqrt(t.variance) for t in tots.values() if t.unobserved]
        )
    else:
        # an arm with few observations and a poor start can still turn out to be the reference
        ref_ucb = max(t.total + z * math.sqrt(t.variance) for t in tots.values())
    aim = min(target * ref_ucb / ref, 1.0)
    t_eff = aim + (aim * ref - q_pol) / (_pacing_horizon(config, n_tot) * ref / n_tot)
    return aim, min(max(t_eff, aim - 0.25), 1.5)


def _pacing_horizon(config: PolicyConfig, n_tot: int) -> float:
    """Requests over which a surplus or deficit so far is paced out."""
    return max(config.pacing_horizon * n_tot, config.plan_window)


def _headroom(
    config: PolicyConfig, target: float, hull: WindowHull, ref: float, n_tot: int, q_pol: float
) -> float:
    """The slack left to explore (``slack_from_headroom``): the quality ratio the price-0 plan
    (every request's best estimate) delivers on the window above the target, once the surplus
    or deficit so far against the reference arm's estimate is paced out like the plan's.

    Measured against the reference arm's *estimate*, not the upper bound the plan aims at: while
    the best arm is uncertain, trying arms is how it becomes known, and that is not cut here.
    """
    paced = target + (target * ref - q_pol) / (_pacing_horizon(config, n_tot) * ref / n_tot)
    return hull.base_q / hull.ref_q - paced


def _ref_candidates(config: PolicyConfig, tots: Mapping[str, RefTotal], ref_key: str) -> set[str]:
    """Arms whose chance of having the highest total reaches the exploration floor."""
    ref, var = tots[ref_key].total, tots[ref_key].variance
    out = {ref_key} if ref_key else set()
    for a, t in tots.items():
        spread = math.sqrt(t.variance + var)
        if a and spread > 0.0 and phi((t.total - ref) / spread) >= config.explore_floor:
            out.add(a)
    return out


def _plan_audits(
    config: PolicyConfig,
    tasks: Mapping[str, TaskState],
    ref_arm: str | None,
    target: float,
    var: float,
) -> dict[str, float]:
    """Value of one more observation of the reference arm on each task type.

    The planner must deliver ``target x (reference total + z sd)``: one more observation of
    the reference arm on a task type shrinks the variance of its counterfactual total there
    by about ``unserved^2 x var(mean) / (n + m + 1)`` and so lowers the quality the fleet
    must deliver by ``target x z x dV / (2 sd)``.  That is compared, per decision, with the
    extra cost of the observation at the shadow price.
    """
    sd = math.sqrt(var) if var > 0.0 else 0.0
    scale = target * config.target_z / (2.0 * sd) if sd > 0.0 else 0.0
    audits: dict[str, float] = {}
    for task_type, task in tasks.items():
        st = task.arms.get(ref_arm) if ref_arm is not None else None
        if st is None or scale <= 0.0 or st.unobs_n <= 0:
            audits[task_type] = 0.0
            continue
        _p0, m, _v0 = st.effective_prior()
        var_mean = st.quality_var(config.posterior_between_variance)
        audits[task_type] = scale * st.unobs_n**2 * var_mean / (st.quality.n + m + 1.0)
    return audits


def _merged_window(
    size: int, shares: Sequence[PlanShare], n_tot: int
) -> list[tuple[PlanShare, list[PlannedRequest]]]:
    """Each share's most recent requests, as many as its share of the traffic of ``size``
    (all of them while the windows together hold no more than ``size``)."""
    merged = []
    for share in shares:
        recent = share.window.chronological()
        quota = int(size * share.traffic() / n_tot)
        merged.append((share, recent[max(len(recent) - quota, 0) :]))
    return merged


def _window_hull(
    windows: Sequence[tuple[PlanShare, Sequence[PlannedRequest]]],
    ref_arm: str | None,
    switch_risk_z: float | None,
) -> WindowHull:
    """Quality at price 0, reference quality and the hull breakpoints of the window requests,
    each estimated by its own share, the arms cheaper than the reference charged
    ``switch_risk_z`` standard deviations (:func:`.estimates.against_reference`)."""
    hull = WindowHull()
    for share, requests in windows:
        cache: dict[str, tuple[TaskState, list[str], Objective]] = {}
        for request in requests:
            task_type = request.task_type
            entry = cache.get(task_type)
            if entry is None:
                task = share.tasks.get(task_type)
                if task is None or not task.arms:
                    continue
                entry = cache[task_type] = (task, list(task.arms), share.objective_of(task_type))
            task, arm_keys, obj = entry
            est = share.estimate(task, arm_keys, request.features)
            qs = est.quality
            if ref_arm is not None and ref_arm in task.arms:
                hull.ref_q += qs[arm_keys.index(ref_arm)]
            else:
                hull.ref_q += max(qs)
            add_request(hull, obj, against_reference(est, arm_keys, ref_arm, switch_risk_z))
    return hull
