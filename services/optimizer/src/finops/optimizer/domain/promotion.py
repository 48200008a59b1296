"""When an experiment's promoted winner stops being pinned. Pure: no I/O.

A winner is pinned for its task type on the evidence its experiment measured: its cost per
call and, through the guardrails, its quality. When the policy's drift detector later finds
the winner's quality fallen or its cost risen on that task type (a model update, a price
change), that evidence no longer describes the arm: the pin is lifted, so that the policy,
which discounted the arm's history and re-explores, chooses among every arm again, the ones
the winner beat included. The promotion's entry stays, marked ``lifted``, so that the same
decision announced again (at least once) does not pin the arm again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: drifts that undo what the experiment measured: ``(metric, direction)``
WORSE = frozenset({("quality", "decrease"), ("cost", "increase")})


def lift_on_drift(
    promoted: dict[str, dict[str, Any]], drift: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Lift the pin that ``drift`` (a policy drift event: ``task_type``, ``arm``, ``metric``,
    ``direction``) undoes, in place; the promotion lifted, or None when nothing changed."""
    promotion = promoted.get(str(drift.get("task_type")))
    if (
        promotion is None
        or promotion.get("lifted")
        or promotion.get("arm") != drift.get("arm")
        or (drift.get("metric"), drift.get("direction")) not in WORSE
    ):
        return None
    promotion["lifted"] = {
        "metric": drift.get("metric"),
        "direction": drift.get("direction"),
        "update_index": drift.get("update_index"),
    }
    return promotion


def pinned(promotion: Mapping[str, Any] | None) -> bool:
    """Whether a task type's promotion still pins its winner."""
    return promotion is not None and not promotion.get("lifted")


def drift_note(promotion: Mapping[str, Any] | None, lifted: bool) -> str:
    """How a drift alert ends for a task type with a promotion: what the drift did to it."""
    if promotion is None:
        return "its history was discounted and the task is re-exploring"
    experiment = f"experiment {promotion.get('experiment')!r} ({promotion.get('experiment_id')})"
    if lifted:
        return (
            f"its history was discounted; it was pinned as the winner of {experiment}: the pin "
            "is lifted and the task is re-exploring among every arm"
        )
    return f"its history was discounted; the task stays pinned to the winner of {experiment}"
