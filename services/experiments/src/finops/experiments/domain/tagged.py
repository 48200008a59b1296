"""What the analysis reads from one cost event, and the record that carries several of them
from the forwarder to the analysis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tagged:
    """What the analysis reads from one cost event (``cost_usd`` None: the call is unpriced),
    or from the error after which a call assigned to the experiment gave up (``success``
    false, ``cost_usd`` 0, ``latency_ms`` None: it has no answer's latency).

    Examples
    --------
    >>> t = Tagged("e1", "x1", "B", 0.01, True, 420.0, None)
    >>> Tagged.from_list(t.to_list()) == t
    True
    """

    event_id: str
    experiment_id: str
    variant: str
    cost_usd: float | None
    success: bool
    latency_ms: float | None
    quality: float | None

    def to_list(self) -> list[Any]:
        return [
            self.event_id,
            self.experiment_id,
            self.variant,
            self.cost_usd,
            self.success,
            self.latency_ms,
            self.quality,
        ]

    @classmethod
    def from_list(cls, fields: Any) -> Tagged:
        """Raises ValueError (or TypeError) on anything :meth:`to_list` did not write."""
        event_id, experiment_id, variant, cost, success, latency, quality = fields
        return cls(
            event_id=str(event_id),
            experiment_id=str(experiment_id),
            variant=str(variant),
            cost_usd=None if cost is None else float(cost),
            success=bool(success),
            latency_ms=None if latency is None else float(latency),
            quality=None if quality is None else float(quality),
        )


def encode_tagged(events: Sequence[Tagged]) -> bytes:
    """Several tagged events in one record (one per experiment and slice: a record per event
    would cost more than the analysis of the event).

    Examples
    --------
    >>> events = [Tagged("e1", "x", "A", 0.01, True, 300.0, 0.9),
    ...           Tagged("e2", "x", "B", None, False, 250.0, None)]
    >>> decode_tagged(encode_tagged(events)) == events
    True
    """
    return json.dumps([e.to_list() for e in events]).encode()


def decode_tagged(raw: bytes) -> list[Tagged]:
    """Raises ValueError (or TypeError) on anything :func:`encode_tagged` did not write."""
    rows = json.loads(raw)
    if not isinstance(rows, list):
        raise ValueError("a list of tagged events was expected")
    return [Tagged.from_list(row) for row in rows]
