"""Per-task-type state: its arms' statistics, exploration counters, feature means."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..arms import ArmStats

__all__ = ["TaskState"]


class TaskState:
    """What the policy knows about one task type.

    ``ctx_prefix`` is the scope of its contextual models (the family, or the task type itself);
    ``audit`` the value, in fleet quality, of one more observation of the reference arm here.
    """

    __slots__ = (
        "arms",
        "audit",
        "boost_until",
        "ctx_prefix",
        "explores",
        "family",
        "feat_mean",
        "feat_n",
        "n",
        "picks",
        "q_sum",
    )

    def __init__(self, family: str, ctx_prefix: str = "") -> None:
        self.family = family
        self.ctx_prefix = ctx_prefix or family  # key prefix of the contextual models
        self.arms: dict[str, ArmStats] = {}
        self.n = 0  # feedback events
        self.q_sum = 0.0  # realised quality of the policy's choices
        self.picks = 0
        self.explores = 0
        self.boost_until = 0
        # value, in fleet quality, of one more observation of the reference arm here
        self.audit = 0.0
        self.feat_mean: dict[str, float] = {}  # running mean of the request features
        self.feat_n = 0

    def centred(self, features: Mapping[str, float]) -> dict[str, float]:
        """Features minus the task's running means (contextual models see within-task variation)."""
        fm = self.feat_mean
        return {k: v - fm.get(k, v) for k, v in features.items()}

    def learn_features(self, features: Mapping[str, float], window: int) -> None:
        self.feat_n += 1
        w = 1.0 / min(self.feat_n, window)
        fm = self.feat_mean
        for k, v in features.items():
            m = fm.get(k)
            fm[k] = v if m is None else m + w * (v - m)

    def arms_copied(self) -> TaskState:
        """A shallow copy with its own mapping of arms (the same statistics): a fleet plan
        reads it on a thread while a replica's API may register an arm here."""
        out = copy.copy(self)
        out.arms = dict(self.arms)
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "ctx_prefix": self.ctx_prefix,
            "arms": {a: st.to_state() for a, st in self.arms.items()},
            "n": self.n,
            "q_sum": self.q_sum,
            "picks": self.picks,
            "explores": self.explores,
            "boost_until": self.boost_until,
            "audit": self.audit,
            "feat_mean": dict(self.feat_mean),
            "feat_n": self.feat_n,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> TaskState:
        t = cls(s["family"], s["ctx_prefix"])
        t.arms = {a: ArmStats.from_state(v) for a, v in s["arms"].items()}
        t.n, t.q_sum, t.picks = s["n"], s["q_sum"], s["picks"]
        t.explores, t.boost_until = s["explores"], s["boost_until"]
        t.feat_mean, t.feat_n = dict(s["feat_mean"]), s["feat_n"]
        t.audit = s.get("audit", 0.0)
        return t
