"""The checkpoint format of :class:`.OptimizerEngine`: its state as named parts, and back.

The state is plain data, written a part at a time (:func:`state_parts`); a replica's view
leaves out the memories of event ids (:func:`view_parts`). :func:`restore` reads it back,
checkpoints of earlier versions included (each key absent from them says what it means).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from finops.optimizer.domain.analytics import IdDedupe, SpendAnalytics
from finops.optimizer.domain.anomaly import SpendAnomalyDetector
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.budgets import BudgetTracker
from finops.optimizer.domain.policy import RoutingPolicy

if TYPE_CHECKING:
    from finops.optimizer.domain.engine import OptimizerEngine

STATE_VERSION = 1


def state_parts(
    engine: OptimizerEngine, resume_at: Mapping[str, int] | None = None
) -> list[tuple[str, Callable[[], Any]]]:
    """The state as named parts, so a caller can serialise it a piece at a time.
    ``resume_at``: the offsets the one worker's intake resumes from with this state, before
    which no record taken is kept (:meth:`.RecordsTaken.to_state`)."""
    return [
        ("version", lambda: STATE_VERSION),
        ("analytics", lambda: engine.analytics.to_state(resume_at=resume_at)),
        ("policy", engine.policy.to_state),
        ("budgets", engine.budgets.to_state),
        ("anomalies", engine.anomalies.to_state),
        ("error_ids", engine.error_ids.to_state),
        ("arms", lambda: {k: asdict(v) for k, v in engine.arms.items()}),
        ("catalog", lambda: {k: asdict(v) for k, v in engine.catalog.items()}),
        ("withdrawn", lambda: sorted(engine.withdrawn)),
        ("task_arms", lambda: {k: list(v) for k, v in engine.task_arms.items()}),
        ("errors_seen", lambda: engine.errors_seen),
        ("drift_alerts", lambda: engine.drift_alerts),
        ("promoted", lambda: {k: dict(v) for k, v in engine.promoted.items()}),
        # apart from the pins: a version before them, which skips this key, pins nothing
        ("promotions_lifted", lambda: {k: dict(v) for k, v in engine.promotions_lifted.items()}),
        ("operator_seq", lambda: dict(engine.operator_seq)),
    ]


def view_parts(engine: OptimizerEngine) -> list[tuple[str, Callable[[], Any]]]:
    """:func:`state_parts` without the memories of event ids: what a replica needs to
    answer queries and recommendations (a view restored from it must not be fed events)."""
    capacity = engine.error_ids.capacity
    replaced: dict[str, Callable[[], Any]] = {
        "analytics": lambda: engine.analytics.to_state(remember_ids=False),
        "error_ids": lambda: IdDedupe(capacity).to_state(),
    }
    return [(name, replaced.get(name, build)) for name, build in state_parts(engine)]


def restore(engine: OptimizerEngine, state: Mapping[str, Any]) -> None:
    """Set every attribute of ``engine`` (made without ``__init__``) from ``state``."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported optimizer state version {state.get('version')!r}")
    engine.analytics = SpendAnalytics.from_state(state["analytics"])
    engine.policy = RoutingPolicy.from_state(state["policy"])
    # an earlier version checkpointed drift events it had already reported as alerts
    engine.policy.drain_drift_events()
    engine.budgets = BudgetTracker.from_state(state["budgets"])
    engine.anomalies = SpendAnomalyDetector.from_state(state["anomalies"])
    engine.error_ids = IdDedupe.from_state(state["error_ids"])
    engine.arms = {k: ArmSpec(**v) for k, v in state["arms"].items()}
    engine.catalog = {k: ArmSpec(**v) for k, v in state["catalog"].items()}
    engine.withdrawn = set(state.get("withdrawn", ()))  # absent before deletions stuck
    engine.task_arms = {k: list(v) for k, v in state["task_arms"].items()}
    engine.errors_seen = state["errors_seen"]
    engine.errors_redelivered = 0  # never checkpointed: a metric's outcome only
    engine.drift_alerts = state["drift_alerts"]
    promoted = {k: dict(v) for k, v in state.get("promoted", {}).items()}
    engine.promotions_lifted = {k: dict(v) for k, v in state.get("promotions_lifted", {}).items()}
    # a checkpoint of the commits that marked a lifted pin inside "promoted" (0ea63b8 up
    # to e4b92c9, never landed) holds it there
    engine.promotions_lifted |= {k: v for k, v in promoted.items() if v.get("lifted")}
    engine.promoted = {k: v for k, v in promoted.items() if not v.get("lifted")}
    # absent before operator changes were numbered: every recorded change is newer
    engine.operator_seq = {k: int(v) for k, v in state.get("operator_seq", {}).items()}
