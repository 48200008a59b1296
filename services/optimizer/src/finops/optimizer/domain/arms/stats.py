"""Everything the policy knows about one arm on one task type: :class:`ArmStats`."""

from __future__ import annotations

import math
from typing import Any

from .cost import CostLevel, CostModel
from .drift_monitor import DriftMonitor
from .latency import LatencyWindow
from .quality import QualityPosterior
from .rank_drift import RANKS_KIND, RankDriftMonitor

__all__ = ["ArmStats"]


class ArmStats:
    """Everything the policy knows about one arm on one task type.

    The quality posterior is over the arm's *task-level intercept*: when a contextual residual
    model is active, observations enter as ``quality - residual(x)`` so that the intercept is not
    biased by which prompts the policy happened to send to this arm (backfitting of the additive
    model ``q(x) = intercept(task, arm) + residual_arm(x)``).
    """

    __slots__ = (
        "cost",
        "cost_drift",
        "cost_level",
        "lat_drift",
        "latency",
        "n_drifts",
        "obs_sum",
        "prior",
        "prior_cap",
        "q_drift",
        "quality",
        "r_bar",
        "r_n",
        "recent_q",
        "recent_q2",
        "unobs_n",
        "unobs_r",
    )

    def __init__(
        self,
        latency_window: int = 256,
        drift_params: dict[str, Any] | None = None,
        latency_running_scale: bool = False,
        cost_ranks: bool = False,
    ) -> None:
        dp = drift_params or {}
        self.quality = QualityPosterior()
        self.cost = CostModel()
        self.latency = LatencyWindow(size=latency_window)
        self.recent_q: float | None = None  # EW mean of quality (recent regime)
        self.recent_q2: float | None = None  # EW mean of squared quality
        self.prior_cap: float | None = None  # max prior strength after a drift
        self.q_drift = DriftMonitor(**dp)
        # see ``PolicyConfig.latency_drift_running_scale``
        self.lat_drift = DriftMonitor(**dp, running_scale=latency_running_scale)
        # see ``PolicyConfig.cost_drift_ranks``
        self.cost_drift: DriftMonitor | RankDriftMonitor = (
            RankDriftMonitor() if cost_ranks else DriftMonitor(**dp)
        )
        # the cost level the detector compares costs with, kept as it was when it settled
        # (see ``PolicyConfig.cost_drift_level_weight``; ``None`` while it settles or off)
        self.cost_level: CostLevel | None = None
        self.n_drifts = 0
        # counterfactual bookkeeping for the fleet reference: realised quality when this arm
        # served, and count / summed contextual residual of the requests it did not serve
        self.obs_sum = 0.0
        self.unobs_n = 0.0
        # running mean of the contextual residual predictions over the task's requests
        self.r_bar = 0.0
        self.r_n = 0.0
        self.unobs_r = 0.0  # summed centred residual predictions of the requests not served
        # (p0, m, v0): prior mean, strength and per-observation variance; set by the policy
        self.prior: tuple[float, float, float] = (0.5, 2.0, 0.25)

    def effective_prior(self) -> tuple[float, float, float]:
        p0, m, v0 = self.prior
        if self.prior_cap is not None and m > self.prior_cap:
            m = self.prior_cap
        return p0, m, v0

    def mean_quality(self) -> float:
        p0, m, _ = self.effective_prior()
        return self.quality.mean(p0, m)

    def quality_var(self, between: bool = True) -> float:
        p0, m, v0 = self.effective_prior()
        return self.quality.variance(p0, m, v0, between)

    def counterfactual_total(
        self, use_residuals: bool = True, optimism: float = 0.0, between: bool = True
    ) -> float:
        """Estimated total quality this arm would have delivered on all requests of its task.

        ``optimism`` shifts the mean used for the requests the arm did not serve by that many
        posterior standard deviations (see ``PolicyConfig.ref_optimism``; ``between``: see
        :meth:`QualityPosterior.observation_variance`).
        """
        mean = self.mean_quality()
        if optimism:
            mean += optimism * math.sqrt(self.quality_var(between))
        t = self.obs_sum + self.unobs_n * mean
        return t + self.unobs_r if use_residuals else t

    def rebase_counterfactual(self) -> None:
        """Freeze the counterfactual estimate (before the quality posterior is reset on drift)."""
        self.obs_sum = self.counterfactual_total()
        self.unobs_n = 0.0
        self.unobs_r = 0.0

    def add_recent(self, q: float, alpha: float) -> None:
        rq, rq2 = self.recent_q, self.recent_q2
        if rq is None or rq2 is None:
            self.recent_q, self.recent_q2 = q, q * q
        else:
            self.recent_q = rq + alpha * (q - rq)
            self.recent_q2 = rq2 + alpha * (q * q - rq2)

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "q": self.quality.to_state(),
            "c": self.cost.to_state(),
            "l": self.latency.to_state(),
            "rq": [self.recent_q, self.recent_q2],
            "cap": self.prior_cap,
            "dq": self.q_drift.to_state(),
            "dl": self.lat_drift.to_state(),
            "dc": self.cost_drift.to_state(),
            "nd": self.n_drifts,
            "ref": [self.obs_sum, self.unobs_n, self.unobs_r],
            "rbar": [self.r_bar, self.r_n],
            "prior": list(self.prior),
        }
        if self.cost_level is not None:  # absent: none kept (and in checkpoints before it)
            state["cl"] = self.cost_level.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArmStats:
        st = cls.__new__(cls)
        st.quality = QualityPosterior.from_state(state["q"])
        st.cost = CostModel.from_state(state["c"])
        st.latency = LatencyWindow.from_state(state["l"])
        st.recent_q, st.recent_q2 = state["rq"]
        st.prior_cap = state["cap"]
        st.q_drift = DriftMonitor.from_state(state["dq"])
        st.lat_drift = DriftMonitor.from_state(state["dl"])
        st.cost_drift = _cost_monitor_from_state(state["dc"])
        level = state.get("cl")
        st.cost_level = None if level is None else CostLevel.from_state(level)
        st.n_drifts = state["nd"]
        st.obs_sum, st.unobs_n, st.unobs_r = state["ref"]
        st.r_bar, st.r_n = state["rbar"]
        st.prior = tuple(state["prior"])
        return st


def _cost_monitor_from_state(state: dict[str, Any]) -> DriftMonitor | RankDriftMonitor:
    """The cost monitor a checkpoint holds (one written before ranks holds a Page-Hinkley)."""
    if state.get("kind") == RANKS_KIND:
        return RankDriftMonitor.from_state(state)
    return DriftMonitor.from_state(state)
