"""Budget definitions: a spend limit per team or agent per UTC day or month (pure domain code).

:class:`Budget` is what a user defines (``PUT /api/budgets/{id}``); :func:`period_bounds` gives
the UTC calendar day or month a time falls in. The accounting of spend against a budget is
:class:`.budgets.BudgetTracker`'s.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from finops.optimizer.domain.eventtime import WINDOWABLE_FROM, WINDOWABLE_UNTIL

__all__ = ["PERIODS", "SCOPES", "Budget", "period_bounds"]

SCOPES = ("team", "agent")
PERIODS = ("day", "month")


def period_bounds(period: str, ts: float) -> tuple[float, float]:
    """``(start, end)`` (epoch seconds, UTC) of the day or month containing ``ts``.

    >>> from finops.optimizer.domain.eventtime import iso_utc
    >>> ts = datetime(2024, 12, 31, 23, tzinfo=UTC).timestamp()
    >>> [iso_utc(t) for t in period_bounds("month", ts)]
    ['2024-12-01T00:00:00Z', '2025-01-01T00:00:00Z']
    """
    if period == "day":
        start = math.floor(ts / 86400) * 86400
        return float(start), float(start + 86400)
    if period == "month":
        d = datetime.fromtimestamp(min(max(ts, WINDOWABLE_FROM), WINDOWABLE_UNTIL), UTC)
        first = datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
        # counted in days, not built as a datetime: December 9999 ends in year 10000
        return first, first + calendar.monthrange(d.year, d.month)[1] * 86400.0
    raise ValueError(f"unknown period {period!r}; one of day, month")


@dataclass(frozen=True)
class Budget:
    """A spend limit for one team or agent per UTC day or month.

    >>> Budget("b1", "team", "search", "day", 100.0).alert_thresholds
    (0.8, 1.0)
    """

    id: str
    scope: str
    subject: str
    period: str
    limit_usd: float
    alert_thresholds: tuple[float, ...] = (0.8, 1.0)

    def __post_init__(self) -> None:
        if not self.id or not self.subject:
            raise ValueError("budget id and subject must be non-empty")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; one of team, agent")
        if self.period not in PERIODS:
            raise ValueError(f"unknown period {self.period!r}; one of day, month")
        if not (math.isfinite(self.limit_usd) and self.limit_usd > 0):
            raise ValueError("limit_usd must be a positive number")
        th = tuple(sorted({float(t) for t in self.alert_thresholds}))
        if not th or any(not (0 < t <= 10) for t in th):
            raise ValueError("alert_thresholds must be fractions of the limit in (0, 10]")
        object.__setattr__(self, "alert_thresholds", th)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alert_thresholds"] = list(self.alert_thresholds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Budget:
        return cls(
            id=d["id"],
            scope=d["scope"],
            subject=d["subject"],
            period=d["period"],
            limit_usd=float(d["limit_usd"]),
            alert_thresholds=tuple(d.get("alert_thresholds", (0.8, 1.0))),
        )


def usd(amount: float) -> str:
    """An amount as a budget's messages show it: cents, or its first two significant digits
    below a cent (a budget of $0.0001 read "$0.00"), and three from a trillion on (a limit of
    1e308 was 400 digits in every pacing reason).

    Examples
    --------
    >>> usd(1234.5), usd(0.5), usd(0.0045), usd(0.0001), usd(0.0)
    ('$1,234.50', '$0.50', '$0.0045', '$0.0001', '$0.00')
    >>> usd(999_999_999_999.0), usd(1e12), usd(1e308), usd(-2.5e15)
    ('$999,999,999,999.00', '$1e+12', '$1e+308', '$-2.5e+15')
    """
    if abs(amount) >= 1e12:
        return f"${amount:.3g}"
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.2g}"
