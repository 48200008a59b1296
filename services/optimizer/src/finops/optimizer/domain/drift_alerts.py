"""The alert a drift of the routing policy raises. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from finops.common.alerts import Alert
from finops.optimizer.domain import ALERT_SOURCE


def drift_alert(event: Mapping[str, Any], cause: str, note: str) -> dict[str, Any]:
    """The alert of one policy drift event (``task_type``, ``arm``, ``metric``, ...) that the
    agent event ``cause`` (its id) raised, with ``note`` (:func:`.promotion.drift_note`).

    Its id is a function of the arm, the metric, the direction and that event alone: a replay
    after a crash, and the other kind of learning re-learning the log (a switch to or from
    partitioned workers), raise a drift found at the same event under the same id, which a
    reader of the alerts drops (an engine's own count of its alerts numbered them apart).

    Examples
    --------
    >>> event = {"task_type": "qa", "arm": "gpt-4o|openai|default", "metric": "cost",
    ...          "direction": "increase"}
    >>> first = drift_alert(event, "call-17", "kept")
    >>> first["alert_id"] == drift_alert(event, "call-17", "another note")["alert_id"]
    True
    >>> first["alert_id"] == drift_alert(event, "call-18", "kept")["alert_id"]
    False
    """
    subject = f"{event.get('task_type')}/{event.get('arm')}"
    metric = event.get("metric", "quality")
    direction = event.get("direction")
    alert_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"drift:{subject}:{metric}:{direction}:{cause}"))
    return Alert(
        "drift",
        alert_id,
        subject,
        "warning",
        f"{metric} of {event.get('arm')} on {event.get('task_type')} changed; {note}",
        ALERT_SOURCE,
        {k: v for k, v in event.items() if isinstance(v, (str, int, float, bool, type(None)))},
    ).to_dict()
