"""Per-request estimates of every candidate arm: quality (contextual), its variance, cost, p95."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..features import COST_FEATURE
from ..residual_quality import ResidualQualityModel
from .config import PolicyConfig
from .costs import CostBook, fill_unknown
from .keys import scoped_key
from .task import TaskState

__all__ = ["Estimates", "against_reference", "estimate_arms"]


@dataclass
class Estimates:
    """Estimates of the arms ``arm_keys[i]`` of one request, index-aligned with them."""

    quality: list[float]
    variance: list[float]  # of the quality estimate
    cost: list[float]  # USD
    latency: list[float | None]  # p95 ms; None while an arm has too few observations


def estimate_arms(
    config: PolicyConfig,
    task: TaskState,
    arm_keys: Sequence[str],
    features: Mapping[str, float] | None,
    ctx: Mapping[str, ResidualQualityModel],
    costs: CostBook,
) -> Estimates:
    """``q_hat(x, a) = mean(task, a) + lam_a * (r_a(x) - rbar(task, a))`` and the rest."""
    est = Estimates([], [], [], [])
    costs_or_unknown: list[float | None] = []
    tokens = features.get(COST_FEATURE) if features else None
    use_ctx = bool(features) and config.contextual
    fam = task.ctx_prefix
    min_lat = config.min_latency_obs
    xc = task.centred(features) if use_ctx else None  # type: ignore[arg-type]
    cfg_cal = config.ctx_calibration_prior
    for a in arm_keys:
        st = task.arms[a]
        p0, m, v0 = st.effective_prior()
        post = st.quality
        q = (post.n * post.mu + m * p0) / (post.n + m)
        if use_ctx:
            model = ctx.get(scoped_key(fam, a))
            if model is not None and model.n > model.warmup:
                lam = model.calibration(cfg_cal)
                if lam > 0.0:
                    q += lam * (model.predict_one(xc) - st.r_bar)  # type: ignore[arg-type]
                q = 0.0 if q < 0.0 else (1.0 if q > 1.0 else q)
        est.quality.append(q)
        est.variance.append(post.variance(p0, m, v0, config.posterior_between_variance))
        costs_or_unknown.append(costs.expected(a, st, tokens))
        est.latency.append(st.latency.p95() if len(st.latency) >= min_lat else None)
    if config.price_unseen_as_dearest:
        est.cost = fill_unknown(costs_or_unknown)
    else:
        est.cost = [0.0 if c is None else c for c in costs_or_unknown]
    return est


def against_reference(
    est: Estimates, arm_keys: Sequence[str], ref_arm: str | None, z: float | None
) -> Estimates:
    """The estimates a fleet target scores a request with: every arm cheaper than the
    fleet's reference arm ``ref_arm`` lowered by ``z`` standard deviations of its difference
    from the reference (at least 0).

    The target is measured against the reference arm, so a cheaper arm served instead of it
    is a bet that the difference is what the estimates say; on a few outcomes per task type
    the arm that looks as good as the reference is, more often than not, the luckier one of
    two.  Dearer arms are left alone: one that may beat the reference is the one to find.
    ``z`` ``None`` (or no reference among ``arm_keys``) returns ``est`` itself.

    Examples
    --------
    >>> est = Estimates([0.80, 0.79, 0.85], [0.0009, 0.0016, 0.01], [1.0, 0.1, 2.0], [None] * 3)
    >>> [round(q, 3) for q in against_reference(est, ["ref", "cheap", "dear"], "ref", 1.0).quality]
    [0.8, 0.74, 0.85]
    >>> against_reference(est, ["ref", "cheap", "dear"], "ref", None) is est
    True
    """
    if z is None or ref_arm is None or ref_arm not in arm_keys:
        return est
    r = list(arm_keys).index(ref_arm)
    vr, cr = est.variance[r], est.cost[r]
    qs = [
        max(q - z * (v + vr) ** 0.5, 0.0) if c < cr else q
        for q, v, c in zip(est.quality, est.variance, est.cost, strict=True)
    ]
    return Estimates(qs, est.variance, est.cost, est.latency)
