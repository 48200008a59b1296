"""What the analysis reads from one cost event, and the record that carries several of them
from the forwarder to the analysis."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

#: the header of a record of tagged events that holds, for each of them, the ``[provider,
#: model]`` its call was answered on (null for a give-up): a record header, so that an
#: analysis of a version before it reads the record as before (it parks a row it does not
#: know)
ARMS_HEADER = "x-experiment-arms"


@dataclass(frozen=True)
class Tagged:
    """What the analysis reads from one cost event (``cost_usd`` None: the call is unpriced),
    or from the error after which a call assigned to the experiment gave up (``success``
    false, ``cost_usd`` 0, ``latency_ms`` None: it has no answer's latency).

    ``arm``: the ``(provider, model)`` the call was answered on, which is not its variant's
    after a fallback; None for a give-up, or a call forwarded by a version before
    :data:`ARMS_HEADER`. It travels in that header, not in :meth:`to_list`.

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
    arm: tuple[str, str] | None = None

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
        """Raises ValueError (or TypeError) on anything :meth:`to_list` did not write: a
        number that is not finite or out of its event field's range too (JSON's ``NaN`` and
        ``Infinity`` parse; the analysis would raise on them later, outside the decoding
        that parks a bad record, and stop the partition for good).

        Examples
        --------
        >>> Tagged.from_list(["e1", "x1", "B", float("nan"), True, 420.0, None])
        Traceback (most recent call last):
        ValueError: cost_usd nan is not a finite number >= 0
        """
        event_id, experiment_id, variant, cost, success, latency, quality = fields
        return cls(
            event_id=str(event_id),
            experiment_id=str(experiment_id),
            variant=str(variant),
            cost_usd=_measure("cost_usd", cost),
            success=bool(success),
            latency_ms=_measure("latency_ms", latency),
            quality=_measure("quality", quality, most=1.0),
        )


def _measure(name: str, value: Any, most: float = math.inf) -> float | None:
    """``value`` (None or a number from 0 to ``most``) as a float; ValueError otherwise."""
    if value is None:
        return None
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= most):
        bound = "" if math.isinf(most) else f" and <= {most:g}"
        raise ValueError(f"{name} {number!r} is not a finite number >= 0{bound}")
    return number


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


def encode_arms(events: Sequence[Tagged]) -> bytes:
    """The :data:`ARMS_HEADER` of the record of ``events``.

    Examples
    --------
    >>> events = [Tagged("e1", "x", "A", 0.01, True, 300.0, 0.9, ("openai", "gpt-4o")),
    ...           Tagged("e2", "x", "B", 0.0, False, None, None)]
    >>> decode_tagged(encode_tagged(events), encode_arms(events)) == events
    True
    """
    return json.dumps([list(e.arm) if e.arm else None for e in events]).encode()


def decode_tagged(raw: bytes, arms: bytes | None = None) -> list[Tagged]:
    """The events of a record, with the arms of its :data:`ARMS_HEADER` (None: a record
    without one, its events' arms unknown). Raises ValueError (or TypeError) on anything
    :func:`encode_tagged` and :func:`encode_arms` did not write."""
    rows = json.loads(raw)
    if not isinstance(rows, list):
        raise ValueError("a list of tagged events was expected")
    events = [Tagged.from_list(row) for row in rows]
    return events if arms is None else with_arms(events, arms)


def with_arms(events: list[Tagged], arms: bytes) -> list[Tagged]:
    """``events`` with the arms an :data:`ARMS_HEADER` holds. Raises ValueError (or
    TypeError) on a header :func:`encode_arms` did not write: the caller may count the
    events without it (the header is optional information: no arm, no fallback).

    >>> with_arms([Tagged("e1", "x", "A", 0.01, True, 500.0, 0.9)], b'[["p", "m", 1]]')
    Traceback (most recent call last):
    ...
    ValueError: an arm is [provider, model], not ['p', 'm', 1]
    """
    answered_on = json.loads(arms)
    if not isinstance(answered_on, list) or len(answered_on) != len(events):
        raise ValueError(f"{ARMS_HEADER} does not hold one arm per event")
    return [
        event if arm is None else replace(event, arm=_arm(arm))
        for event, arm in zip(events, answered_on, strict=True)
    ]


def _arm(value: Any) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"an arm is [provider, model], not {value!r:.60}")
    return value[0], value[1]
