"""The alert a drift of the routing policy raises. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from finops.common.alerts import Alert
from finops.optimizer.domain import ALERT_SOURCE


def drift_alert(event: Mapping[str, Any], seen: int, note: str) -> dict[str, Any]:
    """The alert of one policy drift event (``task_type``, ``arm``, ``metric``, ...), the
    ``seen``-th drift alert of the engine, with ``note`` (:func:`.promotion.drift_note`)."""
    subject = f"{event.get('task_type')}/{event.get('arm')}"
    metric = event.get("metric", "quality")
    alert_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"drift:{subject}:{metric}:{seen}"))
    return Alert(
        "drift",
        alert_id,
        subject,
        "warning",
        f"{metric} of {event.get('arm')} on {event.get('task_type')} changed; {note}",
        ALERT_SOURCE,
        {k: v for k, v in event.items() if isinstance(v, (str, int, float, bool, type(None)))},
    ).to_dict()
