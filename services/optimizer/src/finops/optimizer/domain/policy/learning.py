"""Learning from one outcome (bandit feedback): quality, cost, latency, and their drifts.

Quality follows an additive model ``q(x) = intercept(task, arm) + lam * [r_arm(x) - rbar]``:
the posterior is over the task-level intercept, the residual model ``r`` over prompt-level
deviations (features centred per task, and predictions centred on their running mean ``rbar``
over the task's requests, so it only ranks prompts within a task), ``lam`` its prequential
calibration slope.  By default the intercept learns from the raw quality (``ctx_backfit=False``):
backfitting on selected requests proved over-confident.

A detected drift returns a :class:`DriftSignal`; the policy turns it into a drift event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..arms import ArmStats, CostLevel, RankDriftMonitor, newest_level, quantile
from ..residual_quality import ResidualQualityModel
from .config import PolicyConfig
from .costs import CostBook
from .keys import scoped_key
from .task import TaskState

__all__ = [
    "DriftSignal",
    "clipped_quality",
    "drift_event",
    "learn_cost",
    "learn_latency",
    "learn_quality",
    "on_quality_drift",
    "quality_drift_scale",
]


@dataclass(frozen=True)
class DriftSignal:
    """A change detected in one arm's quality, cost or latency."""

    metric: str  # "quality" | "cost" | "latency"
    direction: int  # > 0: increase
    before: Any
    after: Any


def drift_event(task_type: str, arm: str, signal: DriftSignal, update_index: int) -> dict[str, Any]:
    """The JSON-able drift event reported to callers (and kept in checkpoints)."""
    return {
        "kind": "drift",
        "task_type": task_type,
        "arm": arm,
        "metric": signal.metric,
        "direction": "increase" if signal.direction > 0 else "decrease",
        "update_index": update_index,
        "before": signal.before,
        "after": signal.after,
    }


def clipped_quality(quality: float | None, success: bool) -> float:
    """Quality in [0, 1]: 0 for a failed call, 1 when a successful call reports none."""
    if not success:
        return 0.0
    q = 1.0 if quality is None else float(quality)
    return 0.0 if q < 0.0 else (1.0 if q > 1.0 else q)


def learn_quality(
    config: PolicyConfig,
    task: TaskState,
    st: ArmStats,
    features: Mapping[str, float] | None,
    q: float,
    q_before: float,
    ctx: MutableMapping[str, ResidualQualityModel],
) -> None:
    """Quality posterior, residual models, recent mean and counterfactual bookkeeping.

    ``q_before`` is the arm's mean quality before this outcome."""
    r_chosen = 0.0
    if features and config.contextual:
        r_chosen = _learn_residuals(config, task, st, features, q, q_before, ctx)
    st.quality.add(q - r_chosen if config.ctx_backfit else q)
    st.add_recent(q, config.recent_alpha)
    # counterfactual bookkeeping for the fleet reference
    st.obs_sum += q
    for other in task.arms.values():
        if other is not st:
            other.unobs_n += 1.0


def _learn_residuals(
    config: PolicyConfig,
    task: TaskState,
    st: ArmStats,
    features: Mapping[str, float],
    q: float,
    q_before: float,
    ctx: MutableMapping[str, ResidualQualityModel],
) -> float:
    """Feed the served arm's residual model; track every arm's centred residual predictions
    (the unserved ones count towards their counterfactual totals).  Returns the served arm's
    calibrated residual."""
    r_chosen = 0.0
    xc = task.centred(features)
    task.learn_features(features, config.ctx_center_window)
    window = config.ctx_center_window
    for a, other in task.arms.items():
        key = scoped_key(task.ctx_prefix, a)
        m_a = ctx.get(key)
        if m_a is None:
            if other is not st:
                continue
            m_a = ctx[key] = ResidualQualityModel(
                prior_variance=config.ctx_prior_variance,
                noise_variance=config.ctx_noise_variance,
                clip=config.ctx_clip,
                warmup=config.ctx_warmup,
            )
        r_a = m_a.predict_one(xc)
        if m_a.n > m_a.warmup:
            dev = r_a - other.r_bar
            if other is st:
                m_a.observe_calibration(dev, q - q_before)
                r_chosen = m_a.calibration(config.ctx_calibration_prior) * dev
            elif config.ref_residual_calibrated:
                other.unobs_r += m_a.calibration(config.ctx_calibration_prior) * dev
            else:
                other.unobs_r += dev
            other.r_n += 1.0
            other.r_bar += (r_a - other.r_bar) / min(other.r_n, window)
        if other is st:
            m_a.learn_one(xc, q - q_before)
    return r_chosen


def quality_drift_scale(config: PolicyConfig, estimate: float) -> float | None:
    """Scale of the next outcome for the quality drift monitor: the Bernoulli standard
    deviation of the arm's current estimate (``None``: the monitor's warm-up scale, see
    ``PolicyConfig.quality_drift_bernoulli_scale``).

    Examples
    --------
    >>> round(quality_drift_scale(PolicyConfig(), 0.8), 6)
    0.4
    >>> quality_drift_scale(PolicyConfig(quality_drift_bernoulli_scale=False), 0.8) is None
    True
    """
    if not config.quality_drift_bernoulli_scale:
        return None
    p = min(max(estimate, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p))


def on_quality_drift(config: PolicyConfig, task: TaskState, st: ArmStats) -> None:
    """Shrink the arm's posterior to a few pseudo-observations around its recent mean, cap its
    prior strength and boost the task's exploration."""
    st.rebase_counterfactual()
    recent = st.recent_q if st.recent_q is not None else st.quality.mu
    var = max((st.recent_q2 or 0.0) - recent * recent, 0.01)
    st.quality.discount(config.drift_keep, mean=recent, var=var)
    st.prior_cap = config.drift_keep
    st.n_drifts += 1
    task.boost_until = task.n + config.drift_explore_events
    task.explores = 0
    task.picks = 0


def learn_cost(
    costs: CostBook,
    arm: str,
    st: ArmStats,
    tokens: float | None,
    cost: float,
    level_weight: float = 0.0,
) -> DriftSignal | None:
    """Cost models (task and pooled); a drift of the log-cost residual restarts the task's.

    The residual is ``log(cost / reference)``: the learning cost model's expected cost, or
    with a ``level_weight`` ``w > 0`` (``PolicyConfig.cost_drift_level_weight``; only for a
    :class:`.RankDriftMonitor`) ``frozen ** w * expected ** (1 - w)``, ``frozen`` from the
    model's level kept as it was when the detector settled (:class:`.CostLevel`, with the
    arm's current slope), kept until the next alarm.
    """
    c_hat = costs.expected(arm, st, tokens) if st.cost.n > 0 else None
    costs.learn(arm, st, tokens, cost)
    if c_hat is not None and cost > 0 and c_hat > 0:
        level = st.cost_level if level_weight > 0 else None
        c_ref = c_hat
        if level is not None:
            frozen = level.expected(tokens, costs.slope(arm))
            c_ref = frozen**level_weight * c_hat ** (1.0 - level_weight)
        if st.cost_drift.update(math.log(cost / c_ref)):
            costs.restart(arm, st, tokens, cost)
            st.cost_level = None
            return DriftSignal("cost", st.cost_drift.last_direction, c_hat, cost)
        monitor = st.cost_drift
        if level_weight > 0 and st.cost_level is None:
            if isinstance(monitor, RankDriftMonitor) and monitor.settled:
                st.cost_level = CostLevel.of(st.cost)
    return None


def learn_latency(config: PolicyConfig, st: ArmStats, latency_ms: float) -> DriftSignal | None:
    """Latency window; a drift of log-latency keeps the latencies of the new level: those
    after the best split in two (:func:`~finops.optimizer.domain.arms.newest_level`, on
    ranks) of the latencies the detector saw since its (re)start, where the change it found
    lies, and after a rise at least ``min_latency_obs``. The signal's ``before`` and
    ``after`` are the median latencies before and after the split (a p95 of a few values is
    their largest: one timeout).

    The detector alarms a few calls into a change (16 into a fall from 6.6 s to 0.1 s):
    keeping the last 20 kept mostly the old level, so the alert of that fall read ``before``
    6,595 ms ``after`` 6,697 ms, and the router's p95 stayed at the old level for over a
    hundred calls. After a fall fewer than ``min_latency_obs`` may be kept: the arm's latency
    is unknown (no penalty, no ceiling) until that many are in, no harm for an arm that got
    faster. After a rise the older values kept to make up ``min_latency_obs`` hardly lower a
    p95 of the new level, and the slowed arm stays under its penalty and ceiling.
    """
    lat = float(latency_ms)
    st.latency.add(lat)
    if st.lat_drift.update(math.log(lat if lat > 1e-3 else 1e-3)):
        ordered = st.latency.ordered()
        seen = ordered[-st.lat_drift.last_run_length :]  # an older level may precede them
        new = newest_level(seen)  # on ranks: the latencies or their logs split alike
        before = quantile(ordered[:-new], 0.5) if new < len(ordered) else None
        after = quantile(ordered[-new:], 0.5)
        rose = st.lat_drift.last_direction > 0
        st.latency.keep_recent(max(new, config.min_latency_obs) if rose else new)
        return DriftSignal("latency", st.lat_drift.last_direction, before, after)
    return None
