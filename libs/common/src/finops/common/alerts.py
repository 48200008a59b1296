"""The one alert shape on ``finops.alerts.v1``, whichever service raises it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alert:
    """An alert: what happened (``kind``) to what (``subject``), and its own ``details``.

    ``alert_id`` is deterministic where the same alert may be raised twice (a replayed
    event), so operators can deduplicate.

    Examples
    --------
    >>> Alert("breaker_open", "a1", "openai/gpt-4o", "critical", "opened", "healer").to_dict()[
    ...     "subject"]
    'openai/gpt-4o'
    """

    kind: str
    alert_id: str
    subject: str
    severity: str
    message: str
    source: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
