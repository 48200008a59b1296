"""Empirical-Bayes priors of the ``(task_type, arm)`` quality posteriors.

Two-level model per task family ``f`` and arm ``a``::

    mean_q(t, a) = g_a + beta_a * d(t, -a) + e(t, a),   e ~ N(0, tau2_a)

``g_a`` is the arm's typical quality in the family, ``d(t, -a)`` the task's difficulty as
measured by the *other* arms on the same task (their reliability-weighted deviations from their
own ``g``), ``beta_a`` and ``tau2_a`` are fitted across task types by weighted method of
moments.  A task type on which the cheap arm struggles is therefore expected to be hard for the
expensive arm too, even when the expensive arm is rarely sampled there: this keeps the reference
(best arm) quality well estimated on task types the policy has moved to cheaper arms.  The prior
strength is ``m = v_within / tau2`` pseudo-observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .config import PolicyConfig
from .difficulty import Cell, less_difficulty, task_difficulties
from .keys import arm_of_key, scoped_key
from .task import TaskState

__all__ = ["Prior", "PriorTable"]


class Prior(NamedTuple):
    """Prior of a quality posterior: mean, strength (pseudo-observations), per-obs variance."""

    mean: float
    strength: float
    variance: float


@dataclass(frozen=True)
class _TaskObs:
    """One task type's observations of an arm."""

    task_type: str
    n: float
    mu: float
    m2: float


@dataclass(frozen=True)
class _Level1:
    """One-way empirical Bayes fit of a (family, arm): typical quality, prior strength,
    within-task per-observation variance, between-task variance."""

    g: float
    m: float
    v_w: float
    tau2: float
    #: fitted across enough task types (``eb_min_tasks``), else a pooled mean
    across_tasks: bool = False


@dataclass(frozen=True)
class _Level2:
    """Slope of an arm's quality in the task difficulty seen by the other arms, and the prior
    strength left after it."""

    beta: float
    m: float


@dataclass
class _Tally:
    """An arm's observations and quality sum over every task type."""

    n: float = 0.0
    q_sum: float = 0.0


#: task_type -> arm -> reliability-weighted deviation of the arm's mean from its typical quality
_Difficulty = dict[str, dict[str, float]]


@dataclass
class PriorTable:
    """Priors per ``scoped_key(family, arm)`` and, for families without data, per arm."""

    by_family_arm: dict[str, Prior] = field(default_factory=dict)
    by_arm: dict[str, Prior] = field(default_factory=dict)

    def prior_for(self, family: str, arm: str, default_strength: float) -> Prior:
        pr = self.by_family_arm.get(scoped_key(family, arm))
        if pr is not None:
            return pr
        g = self.by_arm.get(arm)
        if g is not None:
            p0 = g.mean
            return Prior(p0, default_strength, max(p0 * (1 - p0), 0.01))
        return Prior(0.5, default_strength, 0.25)

    def estimate(self, config: PolicyConfig, tasks: Mapping[str, TaskState]) -> None:
        """Refit every prior from the tasks' posteriors and set each arm's prior."""
        groups, arm_tot = _observations(tasks)
        k0 = config.default_prior_strength
        # smoothed towards 1/2 by the default prior strength: an arm seen a couple of times
        # (say, one wrong answer) is not yet known to be useless
        self.by_arm = {
            a: Prior((t.q_sum + 0.5 * k0) / (t.n + k0), k0, 0.25) for a, t in arm_tot.items()
        }
        level1 = {key: _fit_level1(config, rows) for key, rows in groups.items()}
        self.by_family_arm = {k: Prior(v.g, v.m, v.v_w) for k, v in level1.items()}
        diff = _difficulties(groups, level1)
        pooled_difficulty = _pooled_difficulty(config, tasks, _left_out_families(tasks, level1))
        level2: dict[str, _Level2] = {}
        for key, rows in groups.items():
            fit = _fit_level2(config, rows, level1[key], arm_of_key(key), diff)
            if fit is not None:
                level2[key] = fit
        for task_type, task in tasks.items():
            for arm, st in task.arms.items():
                key = scoped_key(task.family, arm)
                pooled = level1.get(key)
                if config.prior_leaves_task_out and pooled and not pooled.across_tasks:
                    rows = _less_difficulty(groups[key], pooled_difficulty)
                    base = _left_out(k0, rows, task_type, arm_tot[arm])
                else:
                    base = self.prior_for(task.family, arm, k0)
                l2 = level2.get(key)
                x = _other_difficulty(diff, task_type, arm) if l2 is not None else None
                if l2 is not None and x is not None:
                    p0 = min(max(base.mean + l2.beta * x, 0.001), 0.999)
                    st.prior = Prior(p0, l2.m, base.variance)
                else:
                    st.prior = base


def _left_out_families(tasks: Mapping[str, TaskState], level1: Mapping[str, _Level1]) -> set[str]:
    """The families with an arm whose prior is pooled without the empirical-Bayes fit across
    task types: the only ones whose priors take task difficulty out."""
    out = set()
    for task in tasks.values():
        for arm in task.arms:
            fit = level1.get(scoped_key(task.family, arm))
            if fit is not None and not fit.across_tasks:
                out.add(task.family)
                break
    return out


def _pooled_difficulty(
    config: PolicyConfig, tasks: Mapping[str, TaskState], families: set[str]
) -> dict[str, float]:
    """Each task type's difficulty in its family's two-way fit (see :mod:`.difficulty`), for
    the ``families`` whose pooled priors take it out (``prior_adjusts_difficulty``; off: none).
    """
    if not (config.prior_adjusts_difficulty and config.prior_leaves_task_out):
        return {}
    cells: dict[str, list[Cell]] = {}
    for task_type, task in tasks.items():
        if task.family not in families:
            continue
        for arm, st in task.arms.items():
            if st.quality.n > 0:
                cells.setdefault(task.family, []).append(
                    Cell(task_type, arm, st.quality.n, st.quality.mu)
                )
    ridge = config.default_prior_strength
    out: dict[str, float] = {}
    for family_cells in cells.values():
        out.update(task_difficulties(family_cells, ridge))
    return out


def _less_difficulty(rows: list[_TaskObs], difficulty: Mapping[str, float]) -> list[_TaskObs]:
    """The rows with each task type's difficulty taken out of its mean."""
    return [
        replace(r, mu=less_difficulty(r.n, r.mu, difficulty.get(r.task_type, 0.0))) for r in rows
    ]


def _observations(
    tasks: Mapping[str, TaskState],
) -> tuple[dict[str, list[_TaskObs]], dict[str, _Tally]]:
    """Observations per (family, arm), and per arm its total count and quality sum."""
    groups: dict[str, list[_TaskObs]] = {}
    arm_tot: dict[str, _Tally] = {}
    for task_type, task in tasks.items():
        for arm, st in task.arms.items():
            post = st.quality
            if post.n <= 0:
                continue
            groups.setdefault(scoped_key(task.family, arm), []).append(
                _TaskObs(task_type, post.n, post.mu, post.m2)
            )
            t = arm_tot.setdefault(arm, _Tally())
            t.n += post.n
            t.q_sum += post.n * post.mu
    return groups, arm_tot


def _fit_level1(config: PolicyConfig, rows: list[_TaskObs]) -> _Level1:
    """One-way empirical Bayes of a (family, arm) across its task types."""
    m_min, m_max = config.prior_strength_min, config.prior_strength_max
    k0 = config.default_prior_strength
    n_tot = sum(r.n for r in rows)
    # mean and per-observation variance smoothed by ``k0`` pseudo-observations of a
    # Bernoulli(g_s): a few identical outcomes must not make the prior certain
    g = (sum(r.n * r.mu for r in rows) + 0.5 * k0) / (n_tot + k0)
    v_w = (sum(r.m2 for r in rows) + k0 * g * (1.0 - g)) / (n_tot + k0)
    m = config.default_prior_strength
    tau2 = v_w / m
    big = [r for r in rows if r.n >= 2.0]
    if len(big) >= config.eb_min_tasks:
        nb = sum(r.n for r in big)
        mb = sum(r.n * r.mu for r in big) / nb
        between = sum(r.n * (r.mu - mb) ** 2 for r in big) / nb
        # the between-task variance is estimated from few task types: a prior learned
        # from k of them is worth at most ~2k pseudo-observations on a new one
        m_cap = min(m_max, 2.0 * len(big))
        tau2 = max(between - len(big) * v_w / nb, v_w / m_cap)
        m = min(max(v_w / tau2, m_min), m_cap)
        ws = [1.0 / (tau2 + v_w / r.n) for r in big]
        g = sum(w * r.mu for w, r in zip(ws, big, strict=True)) / sum(ws)
        return _Level1(g, m, v_w, tau2, across_tasks=True)
    return _Level1(g, m, v_w, tau2)


def _left_out(k0: float, rows: list[_TaskObs], task_type: str, arm_total: _Tally) -> Prior:
    """The pooled-mean prior of one task type's arm without that task type's own outcomes.

    A prior fitted on the outcomes it is then combined with counts them twice: alone in its
    family, an arm whose one outcome was a failure would look like a third of a success rate
    with the spread of three outcomes, and be written off.  The family's other task types
    give the prior, else the arm's other families, else the default.

    Examples
    --------
    >>> rows = [_TaskObs("solo", 1.0, 0.0, 0.0)]
    >>> _left_out(2.0, rows, "solo", _Tally(1.0, 0.0))
    Prior(mean=0.5, strength=2.0, variance=0.25)
    >>> rows.append(_TaskObs("sibling", 4.0, 0.75, 0.75))
    >>> [round(x, 4) for x in _left_out(2.0, rows, "solo", _Tally(5.0, 3.0))]  # the sibling's
    [0.6667, 2.0, 0.1991]
    """
    others = [r for r in rows if r.task_type != task_type]
    if others:
        n = sum(r.n for r in others)
        g = (sum(r.n * r.mu for r in others) + 0.5 * k0) / (n + k0)
        v_w = (sum(r.m2 for r in others) + k0 * g * (1.0 - g)) / (n + k0)
        return Prior(g, k0, v_w)
    own = sum(r.n for r in rows)
    rest_n = arm_total.n - own
    if rest_n > 1e-9 * max(arm_total.n, 1.0):
        rest_q = arm_total.q_sum - sum(r.n * r.mu for r in rows)
        p0 = (rest_q + 0.5 * k0) / (rest_n + k0)
        return Prior(p0, k0, max(p0 * (1 - p0), 0.01))
    return Prior(0.5, k0, 0.25)


def _difficulties(groups: dict[str, list[_TaskObs]], level1: dict[str, _Level1]) -> _Difficulty:
    diff: _Difficulty = {}
    for key, rows in groups.items():
        fit = level1[key]
        arm = arm_of_key(key)
        for r in rows:
            diff.setdefault(r.task_type, {})[arm] = (r.mu - fit.g) * r.n / (r.n + fit.m)
    return diff


def _other_difficulty(diff: _Difficulty, task_type: str, arm: str) -> float | None:
    """Difficulty of a task type as the arms other than ``arm`` see it."""
    devs = diff.get(task_type)
    if not devs:
        return None
    vals = [d for b, d in devs.items() if b != arm]
    return sum(vals) / len(vals) if vals else None


def _fit_level2(
    config: PolicyConfig, rows: list[_TaskObs], fit: _Level1, arm: str, diff: _Difficulty
) -> _Level2 | None:
    """Weighted least squares of the arm's deviations on the others' difficulty."""
    m_min, m_max = config.prior_strength_min, config.prior_strength_max
    pts = []  # (difficulty, deviation, observations)
    for r in rows:
        x = _other_difficulty(diff, r.task_type, arm)
        if x is not None and r.n >= 2.0:
            pts.append((x, r.mu - fit.g, r.n))
    if len(pts) < config.eb_min_tasks:
        return None
    ws = [1.0 / (fit.tau2 + fit.v_w / n) for _x, _y, n in pts]
    sxx = sum(w * x * x for w, (x, _y, _n) in zip(ws, pts, strict=True))
    if sxx <= 1e-12:
        return None
    beta = sum(w * x * y for w, (x, y, _n) in zip(ws, pts, strict=True)) / sxx
    beta = min(max(beta, 0.0), 1.5)
    nb = sum(n for _x, _y, n in pts)
    res = sum(n * (y - beta * x) ** 2 for x, y, n in pts) / nb
    tau2_res = max(res - len(pts) * fit.v_w / nb, fit.v_w / m_max)
    tau2_res = min(tau2_res, fit.tau2)
    m_cap = min(m_max, 2.0 * len(pts))
    return _Level2(beta, min(max(fit.v_w / tau2_res, m_min), m_cap))
