"""Choice probabilities of one request at one price: the greedy arm plus budgeted exploration.

Every probability is an exact propensity (needed for IPS / doubly-robust evaluation): each other
arm gets its Thompson probability of beating the greedy arm (times that of meeting the floor),
capped by a per-task budget of exploratory picks and by the expected waste per request; arms
that may be materially better than the apparent best are sampled to identify the best one; the
fleet's reference arm is audited where one more observation of it is worth its cost; young
plausible arms get a fair trial; a small floor keeps every propensity positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import Objective, PolicyConfig
from .estimates import Estimates
from .first_looks import charge_first_looks
from .mechanism import Mechanism
from .scoring import INF, argmax, feasible, phi, quality_floor, utilities
from .slack import drift_floor, fit_slack, looks, slack_allowance
from .task import TaskState
from .threshold_tests import near_threshold_tests

__all__ = ["Choice", "ExplorationInputs", "choice_probs", "plausible_arms"]


@dataclass
class ExplorationInputs:
    """One request as exploration sees it (prices aside)."""

    config: PolicyConfig
    task: TaskState
    arm_keys: Sequence[str]
    obj: Objective
    est: Estimates
    #: arms that may still be the fleet's best single arm (fleet target only)
    ref_candidates: set[str]
    #: the fleet's reference arm at the last re-plan, if any
    reference_arm: str | None
    #: the fleet plan's headroom at the last re-plan (``FleetPrice.info["headroom"]``), if any
    headroom: float | None = None


@dataclass
class Choice:
    """Choice probabilities at one price, index-aligned with ``arm_keys``."""

    probs: list[float]
    greedy: int
    scores: list[float]
    feasible: list[bool]
    #: no arm meets the constraints: the greedy arm is the best expected quality
    relaxed: bool
    #: what gave each arm its probability (``None``: the greedy arm, or an arm no step gave one)
    mechanisms: list[Mechanism | None]
    #: identification rates kept beyond the slack budget (``identify_beyond_slack``), by index
    identifying: dict[int, float] = field(default_factory=dict)

    def raise_to(self, i: int, p: float, mechanism: Mechanism) -> None:
        """Raise arm ``i``'s probability to ``p`` for ``mechanism`` (a lower ``p`` is no-op)."""
        if p > self.probs[i]:
            self.probs[i] = p
            self.mechanisms[i] = mechanism


def choice_probs(inp: ExplorationInputs, price: float) -> Choice:
    """Greedy arm plus budgeted exploration at ``price`` (quality per USD)."""
    est, k = inp.est, len(inp.arm_keys)
    ok = feasible(inp.obj, est)
    relaxed = not any(ok)
    if relaxed:  # nothing meets the constraints: best expected quality
        ok = [True] * k
        us = list(est.quality)
    else:
        us = utilities(inp.obj, price, est)
    g = argmax(us, est.cost, ok)
    choice = Choice([0.0] * k, g, us, ok, relaxed, [None] * k)
    if k == 1:
        choice.probs[0] = 1.0
        return choice
    raw = _thompson(inp, choice, price)
    plausible = plausible_arms(inp.config, inp.arm_keys, choice.probs, est, inp.ref_candidates)
    raw = _cap_by_budget(inp, choice, raw)
    if raw > 0.0 and price != INF:
        _cap_waste(inp, choice, price, plausible)
    _identify_best(inp, choice, price)
    _audit_reference(inp, choice, price)
    near_threshold_tests(inp, choice)
    _floor_and_fair_trials(inp, choice, plausible)
    return choice


def _thompson(inp: ExplorationInputs, choice: Choice, price: float) -> float:
    """Each non-greedy arm's probability of being better (Gaussian posteriors); returns the sum."""
    est, obj, g, relaxed = inp.est, inp.obj, choice.greedy, choice.relaxed
    qs, vs, cs, us = est.quality, est.variance, est.cost, choice.scores
    floor_q = quality_floor(obj, qs)
    sg = vs[g]
    raw = 0.0
    for i in range(len(qs)):
        if i == g:
            continue
        if price == INF and not relaxed:
            # cost-minimisation: a cheaper arm is better iff it meets the floor
            p = 1.0 if cs[i] < cs[g] else 0.0
        else:
            scale = math.sqrt(vs[i] + sg)
            p = phi((us[i] - us[g]) / scale) if scale > 0 else 0.0
        if floor_q is not None and not relaxed and p > 0.0:
            p *= phi((qs[i] - floor_q) / math.sqrt(vs[i]))
        if obj.latency_p95_ms is not None and not choice.feasible[i] and est.latency[i] is not None:
            p = 0.0  # known to violate the latency ceiling
        choice.probs[i] = p
        choice.mechanisms[i] = Mechanism.THOMPSON if p > 0.0 else None
        raw += p
    return raw


def _cap_by_budget(inp: ExplorationInputs, choice: Choice, raw: float) -> float:
    """Per-decision cap, and none once the task's budget of exploratory picks is spent."""
    cfg, task, k = inp.config, inp.task, len(inp.arm_keys)
    budget_left = (
        task.explores < cfg.explore_allowance * (k - 1) + cfg.max_explore_frac * task.picks
    )
    cap = cfg.max_explore_step if budget_left else 0.0
    if raw > cap:
        scale_down = cap / raw
        choice.probs = [p * scale_down for p in choice.probs]
        raw = cap
    return raw


def _cap_waste(
    inp: ExplorationInputs, choice: Choice, price: float, plausible: Sequence[bool]
) -> None:
    """Cap the expected waste of exploring per request.

    Waste is quality given up plus extra cost valued at the price: arms about as good and as
    cheap as the greedy one are explored freely, clearly worse or dearer ones rarely.  (When
    only cost matters, exploration is of cheaper arms that may meet the floor, limited by the
    budget alone.)  Young plausible arms are exempt: their fair trial is not waste yet.
    """
    cfg, est, g = inp.config, inp.est, choice.greedy
    qs, cs, probs = est.quality, est.cost, choice.probs
    regret = 0.0
    qg, cg = qs[g], cs[g]
    young = cfg.explore_min_obs
    capped = [
        inp.task.arms[a].quality.n >= young or not plausible[i] for i, a in enumerate(inp.arm_keys)
    ]
    for i in range(len(qs)):
        if i != g and capped[i]:
            waste = (qg - qs[i] if qs[i] < qg else 0.0) + (
                price * (cs[i] - cg) if cs[i] > cg else 0.0
            )
            regret += probs[i] * waste
    if regret > cfg.explore_regret_rate:
        scale_down = cfg.explore_regret_rate / regret
        choice.probs = [p * scale_down if capped[i] else p for i, p in enumerate(probs)]


def _identify_best(inp: ExplorationInputs, choice: Choice, price: float) -> None:
    """Sample arms that may be materially better than the apparent best, whatever they cost.

    Targets relative to the best arm need to know which arm is the best: an arm that may beat
    the apparent best by more than the slack the target leaves is sampled -- otherwise an
    unlucky start can leave the reference under-estimated for a long time.

    Where the fleet plan already serves every request its best estimate (``price`` 0: a strict
    target), the price has no room left to hold the target; only knowing the best arm does.
    There an arm whose chance of beating the apparent best by more than the slack reaches
    ``Phi(-target_z)`` keeps its rate beyond the slack budget (``identify_beyond_slack``).
    At any price, an arm dearer than the fleet's reference arm that may still be the fleet's
    best one keeps its rate as far as a second slack allowance pays for it
    (``identify_dearer_candidates``, :func:`_keep_challengers`).
    """
    cfg = inp.config
    rel_target = cfg.fleet_quality_target
    if rel_target is None:
        rel_target = inp.obj.relative_quality_floor
    if cfg.identify_weight <= 0.0 or rel_target is None:
        return
    qs, vs, probs, g = inp.est.quality, inp.est.variance, choice.probs, choice.greedy
    k = len(qs)
    b = max(range(k), key=lambda i: qs[i])
    slack = (1.0 - rel_target) * qs[b]
    # with a fleet target, the chance at which an arm is kept beyond the slack budget
    beyond_slack = (
        phi(-cfg.target_z)
        if cfg.identify_beyond_slack and cfg.fleet_quality_target is not None and price == 0.0
        else INF
    )
    challengers = _dearer_candidates(inp)
    challenged: dict[int, float] = {}
    for i in range(k):
        if i == g or i == b:
            continue
        scale = math.sqrt(vs[i] + vs[b])
        if scale > 0:
            p_better = phi((qs[i] - qs[b] - slack) / scale)
            p_id = cfg.identify_weight * p_better
            if p_id > probs[i]:
                # capped at the step, which may lower an arm a rounding step above it
                probs[i] = min(p_id, cfg.max_explore_step)
                choice.mechanisms[i] = Mechanism.IDENTIFY
            if p_better >= beyond_slack:
                choice.identifying[i] = probs[i]
            elif i in challengers and p_id > 0.0:
                challenged[i] = min(p_id, cfg.max_explore_step)
    if challenged:
        _keep_challengers(inp, choice, challenged)


def _dearer_candidates(inp: ExplorationInputs) -> set[int]:
    """Indices of the arms dearer than the fleet's reference arm (on this request's cost
    estimates) that may still be the fleet's best one (``identify_dearer_candidates``)."""
    cfg, ref_arm, keys = inp.config, inp.reference_arm, inp.arm_keys
    if not cfg.identify_dearer_candidates or cfg.fleet_quality_target is None:
        return set()
    if cfg.explore_slack_share is None or ref_arm is None or ref_arm not in keys:
        return set()
    cs = inp.est.cost
    c_ref = cs[keys.index(ref_arm)]
    return {i for i, a in enumerate(keys) if a in inp.ref_candidates and cs[i] > c_ref}


def _keep_challengers(inp: ExplorationInputs, choice: Choice, rates: dict[int, float]) -> None:
    """Keep the identification rates of dearer reference candidates beyond the slack budget
    (``identify_dearer_candidates``), the likeliest to beat the apparent best first, each at
    its whole rate while a second slack allowance lasts, the one at the margin at what is left."""
    qs, g = inp.est.quality, choice.greedy
    allowance = slack_allowance(inp.config, qs[g], inp.headroom)
    for i in sorted(rates, key=lambda j: (-rates[j], j)):
        loss = max(qs[g] - qs[i], 0.0)
        rate = rates[i] if loss <= 0.0 else min(rates[i], allowance / loss)
        allowance -= rate * loss
        if rate > 0.0:
            choice.identifying[i] = max(choice.identifying.get(i, 0.0), rate)


def _audit_reference(inp: ExplorationInputs, choice: Choice, price: float) -> None:
    """Reference audit: sample the fleet's reference arm where one more observation of it is
    worth more (in fleet quality, ``task.audit``) than its extra cost at the price.

    Decided on cost alone: sampling the reference less where its estimate looks worse would
    leave that estimate biased low.
    """
    cfg, task, ref_arm = inp.config, inp.task, inp.reference_arm
    active = task.audit > 0.0 and cfg.fleet_quality_target is not None and price != INF
    if not active or ref_arm is None:
        return
    r = inp.arm_keys.index(ref_arm) if ref_arm in inp.arm_keys else None
    g, cs = choice.greedy, inp.est.cost
    if r is None or r == g:
        return
    waste = price * (cs[r] - cs[g]) if cs[r] > cs[g] else 0.0
    if task.audit > waste:
        p_audit = min(cfg.max_explore_step, cfg.identify_weight * (1.0 - waste / task.audit))
        choice.raise_to(r, p_audit, Mechanism.AUDIT)


def _floor_and_fair_trials(
    inp: ExplorationInputs, choice: Choice, plausible: Sequence[bool]
) -> None:
    """Exploration floor (raised after a drift), fair trials of thin-evidence plausible arms,
    the total exploration limit, and the greedy arm gets the rest."""
    cfg, task, g = inp.config, inp.task, choice.greedy
    k = len(inp.arm_keys)
    floor_total = cfg.explore_floor
    if task.boost_until > task.n:
        floor_total = max(floor_total, drift_floor(cfg, inp.est, g, inp.headroom))
    per_arm_floor = floor_total / (k - 1)
    # a task's fair-trial traffic does not grow with its number of arms
    fair_trial = cfg.young_explore / (k - 1)
    for i in range(k):
        if i == g:
            continue
        choice.raise_to(i, per_arm_floor, Mechanism.FLOOR)
        # fair trial: an arm whose evidence on this task (own observations plus prior
        # pseudo-observations) is still thin is sampled at a fixed rate
        st = task.arms[inp.arm_keys[i]]
        if choice.probs[i] < fair_trial and plausible[i]:
            _p0, m, _v0 = st.effective_prior()
            if st.quality.n + m < cfg.explore_min_obs:
                choice.raise_to(i, fair_trial, Mechanism.FAIR_TRIAL)
    probs = choice.probs
    others = sum(probs) - probs[g]
    limit = max(cfg.max_explore_step, floor_total)
    if others > limit:
        probs = [p * limit / others if i != g else 0.0 for i, p in enumerate(probs)]
    if cfg.fleet_quality_target is not None and cfg.explore_slack_share is not None:
        allowance = slack_allowance(cfg, inp.est.quality[g], inp.headroom)
        unseen = [
            probs[i] if looks(cfg, task.arms[a]) < cfg.first_look else 0.0
            for i, a in enumerate(inp.arm_keys)
        ]
        # an arm that may be the fleet's best one is looked at whatever it costs: the target
        # is measured against it
        charged = [a not in inp.ref_candidates for a in inp.arm_keys]
        unseen = charge_first_looks(cfg, inp.est, g, unseen, charged, allowance)
        first_look = [max(p, choice.identifying.get(i, 0.0)) for i, p in enumerate(unseen)]
        before = list(probs)
        fit_slack(cfg, inp.est, g, probs, per_arm_floor, first_look, allowance)
        _relabel_kept(choice, before, probs, per_arm_floor)
    probs[g] = 0.0
    probs[g] = 1.0 - sum(probs)
    choice.probs = probs


def _relabel_kept(
    choice: Choice, before: Sequence[float], after: Sequence[float], floor: float
) -> None:
    """Label each arm the slack budget lowered to a rate it keeps whatever the budget -- an
    identification rate kept beyond the slack, or the floor -- by that, not by the step that
    had raised it higher."""
    for i, (was, now) in enumerate(zip(before, after, strict=True)):
        if now >= was:
            continue
        if now == choice.identifying.get(i):
            choice.mechanisms[i] = Mechanism.IDENTIFY
        elif now == floor:
            choice.mechanisms[i] = Mechanism.FLOOR


def plausible_arms(
    config: PolicyConfig,
    arm_keys: Sequence[str],
    thompson: Sequence[float],
    est: Estimates,
    ref_candidates: set[str],
) -> list[bool]:
    """Arms worth a fair trial and uncapped exploration while their evidence is thin.

    An arm qualifies if its Thompson probability of beating the greedy arm reaches the
    exploration floor, or if it may be the best arm -- the one quality targets are measured
    against: with a fleet target, a candidate for the fleet's best single arm (decided at
    re-plan from the counterfactual totals); without, an arm whose chance of the highest
    quality on this task reaches the floor.  With many arms, trying each on every task type
    costs more quality than a 5% target leaves; an arm known to be both worse and no better
    value is left to the exploration floor and the regret cap.
    """
    bar = config.explore_floor
    if config.fleet_quality_target is not None:
        return [p >= bar or a in ref_candidates for a, p in zip(arm_keys, thompson, strict=True)]
    qs, vs = est.quality, est.variance
    b = max(range(len(qs)), key=lambda i: qs[i])
    out = []
    for i, p in enumerate(thompson):
        scale = math.sqrt(vs[i] + vs[b])
        best = i == b or (scale > 0 and phi((qs[i] - qs[b]) / scale) >= bar)
        out.append(p >= bar or best)
    return out
