"""The event times a receiver accepts: :class:`TimeBounds`, checked while an event is parsed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

_TIME_BOUNDS = "time_bounds"


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Event times a receiver accepts, relative to its clock ``now`` (epoch seconds).

    ``max_future_s``: how far an agent's clock may run ahead (clock skew);
    ``max_age_s``: how old an event may be (the retention the receiver supports).
    """

    now: float
    max_future_s: float
    max_age_s: float


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} days"
    return f"{seconds:g} s"


def _within_time_bounds(value: datetime, info: ValidationInfo) -> datetime:
    bounds = info.context.get(_TIME_BOUNDS) if info.context else None
    if bounds is None:
        return value
    ts = value.timestamp()  # defined for every aware datetime, even past year 9999 in UTC
    if ts > bounds.now + bounds.max_future_s:
        raise PydanticCustomError(
            "time_in_future",
            "event time is more than {skew} ahead of the server's clock",
            {"skew": _duration(bounds.max_future_s)},
        )
    if ts < bounds.now - bounds.max_age_s:
        raise PydanticCustomError(
            "time_too_old",
            "event time is older than the {retention} this server accepts",
            {"retention": _duration(bounds.max_age_s)},
        )
    return value
