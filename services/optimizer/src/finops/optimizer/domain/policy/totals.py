"""Each arm's counterfactual total: the quality it would have delivered on every request.

The fleet target is measured against the best single arm in hindsight; the planner estimates
that arm's total from each arm's outcomes where it served and its task mean (plus calibrated
residuals) where it did not (see :mod:`.planner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..arms import ArmStats
from .config import PolicyConfig
from .task import TaskState

__all__ = ["RefTotal", "reference_totals"]


@dataclass(frozen=True)
class RefTotal:
    """Estimated total quality an arm would have delivered on all requests, and its variance."""

    total: float
    variance: float
    #: the arm has no outcome on any task type yet (its total rests on its prior alone)
    unobserved: bool = False


def _total_variance(st: ArmStats, between: bool) -> float:
    """Variance of an arm's counterfactual total on its task (unserved requests only)."""
    unseen = st.unobs_n
    if unseen <= 0:
        return 0.0
    p0, m, v0 = st.effective_prior()
    v_obs = st.quality.observation_variance(p0, m, v0, between)
    return unseen * unseen * st.quality_var(between) + unseen * v_obs


def reference_totals(config: PolicyConfig, tasks: Mapping[str, TaskState]) -> dict[str, RefTotal]:
    """Estimated total quality (and its variance) each arm would have delivered.

    Only arms available on every task type with traffic are candidates for the fleet's
    "best single arm"; if there is none the per-task best arm is used (key ``""``).
    """
    between = config.posterior_between_variance
    totals: dict[str, float] = {}
    variances: dict[str, float] = {}
    counts: dict[str, int] = {}
    observed: set[str] = set()
    n_tasks = 0
    best_t = 0.0
    best_v = 0.0
    for task in tasks.values():
        if task.n <= 0 or not task.arms:
            continue
        n_tasks += 1
        best: tuple[float, ArmStats] | None = None
        for arm, st in task.arms.items():
            t = st.counterfactual_total(config.ref_residuals, config.ref_optimism, between)
            totals[arm] = totals.get(arm, 0.0) + t
            variances[arm] = variances.get(arm, 0.0) + _total_variance(st, between)
            counts[arm] = counts.get(arm, 0) + 1
            if st.quality.n > 0:
                observed.add(arm)
            if best is None or t > best[0]:
                best = (t, st)
        best_t += best[0]  # type: ignore[index]
        best_v += _total_variance(best[1], between)  # type: ignore[index]
    out = {
        a: RefTotal(t, variances[a], a not in observed)
        for a, t in totals.items()
        if counts[a] == n_tasks
    }
    if not out and n_tasks:
        out = {"": RefTotal(best_t, best_v)}
    return out
