"""Per-arm online statistics used by the routing policy.

An *arm* is one way of serving a request: a ``(model, provider, config-id)`` triple, written as
the string ``"model|provider|config"`` (its identity is :class:`.arm_identity.Arm`).  For every
``(task_type, arm)`` pair the policy keeps an :class:`ArmStats`, which bundles

* :class:`QualityPosterior` -- a conjugate (Beta-like / Normal) posterior over mean quality whose
  prior is supplied at query time (hierarchical shrinkage towards the arm's family-wide mean),
* :class:`CostModel` -- expected cost of a request, linear in the prompt's input tokens,
* :class:`LatencyWindow` -- a sliding-window latency sketch giving the mean and the p95,
* two :class:`DriftMonitor` (quality, log-latency), each a :class:`river.drift.PageHinkley`
  detector run on standardised values, and a :class:`RankDriftMonitor` on the log-cost
  residual (a CUSUM on sequential ranks; a Page-Hinkley in checkpoints written before it).

Everything here is pure Python, O(1) per update (except the lazily sorted latency window and
the rank monitor's sorted window: a binary search and a list insert) and
serialises to plain JSON-able dicts with ``to_state`` / ``from_state``.

The concepts live in the modules of this package -- :mod:`.quality`, :mod:`.cost`,
:mod:`.latency`, :mod:`.drift_monitor`, :mod:`.rank_drift` and :mod:`.stats` -- and are
re-exported here, so ``from finops.optimizer.domain.arms import ArmStats`` keeps working.
"""

from __future__ import annotations

from .cost import CostLevel, CostModel
from .drift_monitor import RIVER_FORGETTING as RIVER_FORGETTING
from .drift_monitor import DriftMonitor
from .latency import LatencyWindow, newest_level, quantile
from .quality import QualityPosterior
from .rank_drift import RankDriftMonitor
from .stats import ArmStats

__all__ = [
    "ArmStats",
    "CostLevel",
    "CostModel",
    "DriftMonitor",
    "LatencyWindow",
    "QualityPosterior",
    "RankDriftMonitor",
    "newest_level",
    "quantile",
]
