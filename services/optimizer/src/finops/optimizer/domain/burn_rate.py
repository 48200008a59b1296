"""Burn accounting of one budget in one period: spend, calls, burn rate and forecast (pure).

``forecast = spend so far + burn rate x time left in the period`` where the burn rate (USD/s)
is an EWMA of the closed hourly spend rates (half-life 3 hours for day budgets, 24 hours for
month budgets; hours without spend count as 0; the EWMA carries over from one period to the
next, so the first hour of a day is already forecast from yesterday's pace), except that the
current hour's rate replaces it when it is more than twice as high (a runaway agent shows
within minutes, not at the end of the hour). The current hour's rate is measured between its
first and its latest call (``n - 1`` intervals, so evenly spaced calls give the exact rate)
over at least 15 minutes.

Before the first hour has closed the EWMA is replaced by ``spend / max(time observed, 1 h)``
(the one-hour floor keeps a first expensive call from projecting absurd totals). The same
estimator, applied to call counts, gives the expected number of remaining calls for pacing.

The first closed hour, which starts the EWMAs at full weight, is kept (:class:`FirstHour`):
merging the states of disjoint streams (:mod:`.burn_merge`) reweights it to what one state fed
every call would have given it.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Any

__all__ = [
    "DEFAULT_HALF_LIFE_H",
    "HOUR",
    "BurnState",
    "FirstHour",
    "ewma_alpha",
]

HOUR = 3600
MIN_CURRENT_HOUR_S = 900
RUNAWAY_FACTOR = 2.0
MIN_OBSERVED_S = 3600
DEFAULT_HALF_LIFE_H = {"day": 3.0, "month": 24.0}


def ewma_alpha(half_life_hours: float) -> float:
    """Weight of a new hourly rate in an EWMA with this half-life (in hours).

    >>> round(ewma_alpha(1.0), 3), round(ewma_alpha(3.0), 3)
    (0.5, 0.206)
    """
    return 1.0 - 0.5 ** (1.0 / max(half_life_hours, 1e-9))


@dataclass(frozen=True)
class FirstHour:
    """The hour whose rates started a state's EWMAs: its start (epoch s), spend, calls and
    the seconds it was observed over (its rates are ``spend / observed``, ``calls /
    observed``)."""

    start: float
    spend: float
    calls: int
    observed: float


class BurnState:
    """Spend, calls and burn-rate memory of one budget in its current period.

    ``fired`` lists the alerts already raised in the period (see :mod:`.budget_alerts`) and
    ``late`` counts the events that belonged to a finished period.

    Examples
    --------
    >>> st = BurnState(0.0, 86400.0)  # a day
    >>> for ts in (0.0, 1800.0):  # $1 at 00:00 and at 00:30
    ...     st.roll_hour(0.2, ts)
    ...     st.add(ts, 1.0, 1)
    >>> [round(r * HOUR, 3) for r in st.rates(3600.0)]  # $ and calls per hour
    [2.0, 2.0]
    >>> round(st.forecast(3600.0), 2)  # $2 + 23 h x $2/h
    48.0
    >>> BurnState.unpack(st.pack()).forecast(3600.0) == st.forecast(3600.0)
    True
    """

    __slots__ = (
        "call_ewma",
        "calls",
        "fired",
        "first_hour",
        "first_ts",
        "hour_calls",
        "hour_first_cost",
        "hour_first_ts",
        "hour_spend",
        "hour_start",
        "last_ts",
        "late",
        "period_end",
        "period_start",
        "rate_ewma",
        "spend",
    )

    def __init__(self, period_start: float, period_end: float) -> None:
        self.period_start = period_start
        self.period_end = period_end
        self.spend = 0.0
        self.calls = 0
        self.fired: list[str] = []
        self.first_ts: float | None = None  # first observation (ever), for the pre-EWMA rate
        self.last_ts: float | None = None
        self.hour_start: float | None = None
        self.hour_spend = 0.0
        self.hour_calls = 0
        self.hour_first_ts: float | None = None  # first call of the current hour
        self.hour_first_cost = 0.0
        self.rate_ewma: float | None = None  # USD / s
        self.call_ewma: float | None = None  # calls / s
        self.first_hour: FirstHour | None = None  # None too in states packed before it was kept
        self.late = 0

    @classmethod
    def carried_over(cls, prev: BurnState | None, start: float, end: float) -> BurnState:
        """A new period's state, keeping the burn-rate memory of ``prev`` (if any)."""
        st = cls(start, end)
        if prev is not None:  # burn-rate memory carries over periods
            st.rate_ewma, st.call_ewma = prev.rate_ewma, prev.call_ewma
            st.hour_start, st.hour_spend, st.hour_calls = (
                prev.hour_start,
                prev.hour_spend,
                prev.hour_calls,
            )
            st.hour_first_ts, st.hour_first_cost = prev.hour_first_ts, prev.hour_first_cost
            st.first_ts, st.last_ts = prev.first_ts, prev.last_ts
            st.first_hour = prev.first_hour
        return st

    def add(self, ts: float, cost: float, calls: int) -> None:
        """Count the spend of ``calls`` calls at ``ts`` (after :meth:`roll_hour` to ``ts``)."""
        self.spend += cost
        self.calls += calls
        if self.hour_start is not None and ts >= self.hour_start:
            if self.hour_first_ts is None or ts < self.hour_first_ts:
                self.hour_first_ts, self.hour_first_cost = ts, cost
            self.hour_spend += cost
            self.hour_calls += calls
        if self.first_ts is None:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def roll_hour(self, alpha: float, ts: float) -> None:
        """Close the current hour if ``ts`` is past it: its rates enter the EWMAs (weight
        ``alpha``), decayed for every empty hour since."""
        hour = math.floor(ts / HOUR) * HOUR
        if self.hour_start is None:
            self.hour_start = float(hour)
            return
        if hour <= self.hour_start:
            return
        observed = float(HOUR)
        if self.rate_ewma is None and self.first_ts is not None:
            observed = max(self.hour_start + HOUR - max(self.first_ts, self.hour_start), 60.0)
        r, c = self.hour_spend / observed, self.hour_calls / observed
        if self.rate_ewma is None or self.call_ewma is None:
            self.rate_ewma, self.call_ewma = r, c
            self.first_hour = FirstHour(self.hour_start, self.hour_spend, self.hour_calls, observed)
        else:
            self.rate_ewma += alpha * (r - self.rate_ewma)
            self.call_ewma += alpha * (c - self.call_ewma)
        empty = int((hour - self.hour_start) // HOUR) - 1
        if empty > 0:
            decay = (1.0 - alpha) ** empty
            self.rate_ewma *= decay
            self.call_ewma *= decay
        self.hour_start = float(hour)
        self.hour_spend = 0.0
        self.hour_calls = 0
        self.hour_first_ts = None
        self.hour_first_cost = 0.0

    def rates(self, ts: float) -> tuple[float, float]:
        """Burn rate (USD/s) and call rate (calls/s) at ``ts``."""
        if self.rate_ewma is None or self.call_ewma is None:
            since = max(self.first_ts if self.first_ts is not None else ts, self.period_start)
            span = max(ts - since, MIN_OBSERVED_S)
            return self.spend / span, self.calls / span
        rate, crate = self.rate_ewma, self.call_ewma
        if (
            self.hour_first_ts is not None
            and self.hour_calls > 1
            and self.hour_start is not None
            and ts >= self.hour_start
        ):
            span = max(ts - self.hour_first_ts, MIN_CURRENT_HOUR_S)
            current = (self.hour_spend - self.hour_first_cost) / span
            if current > RUNAWAY_FACTOR * rate:
                rate = current
                crate = max(crate, (self.hour_calls - 1) / span)
        return rate, crate

    def forecast(self, ts: float) -> float:
        """Spend forecast at the end of the period, as of ``ts``."""
        rate, _ = self.rates(ts)
        return self.spend + rate * max(self.period_end - ts, 0.0)

    def pack(self) -> list[Any]:
        """JSON-ready form: the fields of :data:`_PACKED` in order, then the first hour."""
        first = None if self.first_hour is None else list(astuple(self.first_hour))
        return [*(getattr(self, s) for s in _PACKED), first]

    @classmethod
    def unpack(cls, p: list[Any]) -> BurnState:
        """The state :meth:`pack` gave, or a state packed before the first hour was kept."""
        st = cls(0.0, 0.0)
        for name, value in zip(_PACKED, p[: len(_PACKED)], strict=True):
            setattr(st, name, value)
        st.fired = list(st.fired)
        first = p[len(_PACKED)] if len(p) > len(_PACKED) else None
        st.first_hour = None if first is None else FirstHour(*first)
        return st


#: the fields :meth:`BurnState.pack` writes, in the order of the first version's state
_PACKED = tuple(s for s in BurnState.__slots__ if s != "first_hour")
