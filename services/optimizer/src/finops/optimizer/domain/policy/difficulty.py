"""Task difficulty in a family: what a pooled prior must take out before comparing arms.

A prior pooled over a family's task types (fewer than ``eb_min_tasks`` of them, before the
empirical-Bayes fit of :mod:`.priors`) is each arm's mean over the task types *it* was seen on.
Under adaptive sampling those differ from arm to arm: early on, one arm is tried on the hard
task types (math, coding) and another on the easy ones (writing, roleplay), and the pooled
means rank the arms by the task types they happened to serve -- Simpson's paradox.  On
MT-Bench at a 0.99 target the weaker, 42x cheaper model looked better than the stronger one for
the first third of the run this way, became the fleet's reference arm and the greedy pick on
task types the stronger one had not been tried on yet.

The remedy is the two-way (task + arm) model of the family's cell means on the log-odds
scale, where an arm's edge is about the same on easy and hard task types (on the quality scale
every arm's mean is squeezed towards 1 on easy task types and towards 0 on hard ones)::

    logit mu(t, a) = tau_t + alpha_a + e(t, a)

fitted by weighted least squares (weights: observations) with a ridge of ``ridge``
pseudo-observations shrinking each task effect to 0 (the arm effects are free).  A task type
served by several arms compares them; one served by one arm alone only moves that arm's level
as far as the arm's other task types leave it unexplained, and a family whose task types are
each served by one arm compares nothing: every effect is 0 and the pooled means stand (as in
a family with one arm seen so far).  :func:`task_difficulties` returns each
task type's effect relative to the traffic-weighted typical task: a pooled prior subtracts it
from the arm's outcomes on that task type (``PolicyConfig.prior_adjusts_difficulty``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Cell", "less_difficulty", "task_difficulties"]


def _logit(n: float, mean: float) -> float:
    """Log-odds of a mean of ``n`` outcomes in [0, 1]; a perfect record (all 0 or all 1) is
    read as half an outcome short of it, out of ``n + 1``, to stay finite."""
    eps = 0.5 / (n + 1.0)
    p = min(max(mean, eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


def less_difficulty(n: float, mean: float, difficulty: float) -> float:
    """The mean of ``n`` outcomes on a task type of effect ``difficulty`` (log-odds, see
    :func:`task_difficulties`) as it would be on the family's typical task type.

    Examples
    --------
    >>> round(less_difficulty(4, 0.75, -1.0), 3)  # a hard task type: 0.75 there is a lot
    0.891
    >>> round(less_difficulty(4, 0.75, 0.0), 3), round(less_difficulty(4, 1.0, 0.0), 3)
    (0.75, 1.0)
    """
    z = _logit(n, mean)
    # moved by as much as the difficulty moves the expit of its (finite) log-odds: an effect
    # of 0 leaves every mean as it was, a perfect record too
    return min(max(mean + _expit(z - difficulty) - _expit(z), 0.0), 1.0)


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class Cell:
    """One arm's outcomes on one task type of a family: their count and mean."""

    task_type: str
    arm: str
    n: float
    mean: float


def task_difficulties(cells: Sequence[Cell], ridge: float) -> dict[str, float]:
    """Each task type's effect ``tau_t`` (log-odds) in the two-way fit of ``cells`` (see the
    module docstring), less the traffic-weighted mean effect: positive for an easy task type.

    Examples
    --------
    The strong arm was seen on the hard task type, the weak one there twice and six times on
    the easy type:

    >>> cells = [
    ...     Cell("math", "strong", 4, 0.75), Cell("math", "weak", 2, 0.25),
    ...     Cell("writing", "weak", 6, 0.95),
    ... ]
    >>> d = task_difficulties(cells, ridge=2.0)
    >>> round(d["math"], 3), round(d["writing"], 3)
    (-1.099, 1.099)

    The pooled means rank the weak arm first (0.775 against 0.75); as on the typical task type,
    the strong arm leads:

    >>> def typical(arm):
    ...     mine = [c for c in cells if c.arm == arm]
    ...     total = sum(c.n * less_difficulty(c.n, c.mean, d[c.task_type]) for c in mine)
    ...     return round(total / sum(c.n for c in mine), 3)
    >>> typical("strong"), typical("weak")
    (0.9, 0.75)

    A family whose task types are each served by one arm compares nothing: every effect is 0
    and the arms keep their pooled means.

    >>> one_each = [Cell("a", "x", 8, 0.9), Cell("b", "y", 8, 0.5)]
    >>> {t: round(v, 3) + 0.0 for t, v in task_difficulties(one_each, 2.0).items()}
    {'a': 0.0, 'b': 0.0}
    """
    tasks = sorted({c.task_type for c in cells})
    arms = sorted({c.arm for c in cells})
    total = sum(c.n for c in cells)
    if len(arms) < 2 or total <= 0.0:  # nothing to compare: the pooled means stand
        return dict.fromkeys(tasks, 0.0)
    centre = sum(c.n * _logit(c.n, c.mean) for c in cells) / total
    col = {t: j for j, t in enumerate(tasks)} | {a: len(tasks) + j for j, a in enumerate(arms)}
    # weighted least squares as one ordinary system: a row per cell scaled by sqrt(n), and a
    # row per task type pulling its effect to 0 with the weight of ``ridge`` observations
    design = np.zeros((len(cells) + len(tasks), len(col)))
    target = np.zeros(len(cells) + len(tasks))
    for r, c in enumerate(cells):
        w = math.sqrt(c.n)
        design[r, col[c.task_type]] = design[r, col[c.arm]] = w
        target[r] = w * (_logit(c.n, c.mean) - centre)
    for j in range(len(tasks)):
        design[len(cells) + j, j] = math.sqrt(ridge)
    effects = np.linalg.lstsq(design, target, rcond=None)[0]
    typical = sum(c.n * effects[col[c.task_type]] for c in cells) / total
    return {t: float(effects[col[t]] - typical) for t in tasks}
