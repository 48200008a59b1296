"""When an experiment's promoted winner stops being pinned. Pure: no I/O.

A winner is pinned for its task type on the evidence its experiment measured: its cost per
call and, through the guardrails, its quality. When the policy's drift detector later finds
the winner's quality fallen or its cost risen on that task type (a model update, a price
change), that evidence no longer describes the arm: the pin is lifted, so that the policy,
which discounted the arm's history and re-explores, chooses among every arm again, the ones
the winner beat included. The promotion moves from the pinned ones to the lifted ones, so
that the same decision announced again (at least once) does not pin the arm again; kept
apart, a version that knows no lifted promotions (e87b306 and before), rolled back to, finds
no pin for that task type either (it would take one still among the pinned for a pin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: drifts that undo what the experiment measured: ``(metric, direction)``
WORSE = frozenset({("quality", "decrease"), ("cost", "increase")})


def lift_on_drift(
    pinned: dict[str, dict[str, Any]],
    lifted: dict[str, dict[str, Any]],
    drift: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Lift the pin that ``drift`` (a policy drift event: ``task_type``, ``arm``, ``metric``,
    ``direction``) undoes: its promotion moves from ``pinned`` to ``lifted`` (by task type),
    noting the drift under ``"lifted"``; the promotion lifted, or None when nothing changed.

    >>> pinned = {"qa": {"arm": "mini", "experiment_id": "x1"}}
    >>> lifted = {}
    >>> drift = {"task_type": "qa", "arm": "mini", "metric": "quality", "direction": "decrease"}
    >>> lift_on_drift(pinned, lifted, drift)["lifted"]["metric"], pinned, list(lifted)
    ('quality', {}, ['qa'])
    >>> lift_on_drift(pinned, lifted, drift) is None  # lifted already
    True
    """
    task_type = str(drift.get("task_type"))
    promotion = pinned.get(task_type)
    if (
        promotion is None
        or promotion.get("arm") != drift.get("arm")
        or (drift.get("metric"), drift.get("direction")) not in WORSE
    ):
        return None
    promotion = {
        **pinned.pop(task_type),
        "lifted": {
            "metric": drift.get("metric"),
            "direction": drift.get("direction"),
            "update_index": drift.get("update_index"),
        },
    }
    lifted[task_type] = promotion
    return promotion


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
