"""Per-request estimates of every candidate arm: quality (contextual), its variance, cost, p95."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..features import COST_FEATURE, ResidualQualityModel
from .config import PolicyConfig
from .costs import CostBook, fill_unknown
from .keys import scoped_key
from .task import TaskState

__all__ = ["Estimates", "estimate_arms"]


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
        est.variance.append(post.variance(p0, m, v0))
        costs_or_unknown.append(costs.expected(a, st, tokens))
        est.latency.append(st.latency.p95() if len(st.latency) >= min_lat else None)
    if config.price_unseen_as_dearest:
        est.cost = fill_unknown(costs_or_unknown)
    else:
        est.cost = [0.0 if c is None else c for c in costs_or_unknown]
    return est
