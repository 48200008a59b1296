"""Checkpoint format of :class:`.RoutingPolicy` (version 1): a JSON-able dict.

The optimizer stores it in PostgreSQL and restores it after a restart, so the format is a
contract: ``tests/unit/optimizer/fixtures/policy_state_v1.json`` holds a state written before the
policy became a package and must keep loading into a policy that decides the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from ..arms import CostModel
from ..residual_quality import ResidualQualityModel
from .config import LEGACY_SETTINGS, Objective, PolicyConfig
from .costs import PooledCost
from .planner import PlannedRequest
from .priors import Prior
from .scoring import INF
from .task import TaskState

if TYPE_CHECKING:
    from .routing import RoutingPolicy

__all__ = ["dec_inf", "dump", "enc_inf", "load"]

STATE_VERSION = 1


def enc_inf(x: Any) -> Any:
    """JSON has no infinity: +inf (an unbounded shadow price) is stored as ``None``."""
    return None if isinstance(x, float) and x == INF else x


def dec_inf(x: Any) -> float:
    return INF if x is None else float(x)


def dump(policy: RoutingPolicy) -> dict[str, Any]:
    """JSON-able snapshot of the whole policy."""
    plan = policy._plan
    version, internal, gauss = policy._rng.getstate()
    return {
        "version": STATE_VERSION,
        "config": asdict(policy.config),
        "default_arms": list(policy.default_arms),
        "objectives": {k: asdict(v) for k, v in policy.objectives.items()},
        "tasks": {k: t.to_state() for k, t in policy._tasks.items()},
        "priors": {k: list(v) for k, v in policy._priors.by_family_arm.items()},
        "arm_prior": {k: list(v) for k, v in policy._priors.by_arm.items()},
        "arm_cost": {
            k: [v.model.to_state(), v.cxy, v.cxx] for k, v in policy._costs.pooled.items()
        },
        "cost_hints": dict(policy._costs.hints),
        "ctx": {k: m.to_state() for k, m in policy._ctx.items()},
        "drift_events": list(policy._drift_events),
        "window": [[r.task_type, r.features] for r in policy._window.chronological()],
        "n_updates": policy._n_updates,
        "since_replan": policy._since_replan,
        "mu": enc_inf(plan.mu),
        "mu_hi": enc_inf(plan.mu_hi),
        "mu_mix": plan.mu_mix,
        "ref_candidates": sorted(plan.ref_candidates),
        "xloss": [plan.xloss, plan.xloss_w],
        "plan_info": {k: enc_inf(v) for k, v in plan.info.items()},
        "rng": [version, list(internal), gauss],
    }


def load(cls: type[RoutingPolicy], state: Mapping[str, Any]) -> RoutingPolicy:
    """Rebuild a policy from :func:`dump` output (e.g. after a JSON round trip)."""
    names = {f.name for f in fields(PolicyConfig)}
    saved = {**LEGACY_SETTINGS, **state["config"]}
    config = PolicyConfig(**{k: v for k, v in saved.items() if k in names})
    policy = cls(
        config=config,
        default_arms=state["default_arms"],
        objectives={k: Objective(**v) for k, v in state["objectives"].items()},
    )
    policy._tasks = {k: TaskState.from_state(v) for k, v in state["tasks"].items()}
    policy._priors.by_family_arm = {k: Prior(*v) for k, v in state["priors"].items()}
    policy._priors.by_arm = {k: Prior(*v) for k, v in state["arm_prior"].items()}
    policy._costs.pooled = {
        k: PooledCost(CostModel.from_state(v[0]), v[1], v[2]) for k, v in state["arm_cost"].items()
    }
    policy._costs.hints = dict(state["cost_hints"])
    policy._ctx = {k: ResidualQualityModel.from_state(v) for k, v in state["ctx"].items()}
    policy._drift_events.extend(state["drift_events"])  # keeps the newest, up to maxlen
    # the window is stored oldest first
    policy._window.items = [PlannedRequest(t, f) for t, f in state["window"]]
    policy._window.pos = 0
    policy._n_updates = state["n_updates"]
    policy._since_replan = state["since_replan"]
    _load_plan(policy, state)
    version, internal, gauss = state["rng"]
    policy._rng.setstate((version, tuple(internal), gauss))
    return policy


def _load_plan(policy: RoutingPolicy, state: Mapping[str, Any]) -> None:
    plan = policy._plan
    plan.mu = dec_inf(state["mu"])
    plan.mu_hi = dec_inf(state["mu_hi"])
    plan.mu_mix = state["mu_mix"]
    plan.ref_candidates = set(state.get("ref_candidates", ()))
    plan.xloss, plan.xloss_w = state["xloss"]
    plan.info = {
        k: (INF if k in ("mu", "mu_hi") and v is None else v) for k, v in state["plan_info"].items()
    }
