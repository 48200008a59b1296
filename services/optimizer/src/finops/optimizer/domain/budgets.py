"""Budgets per team / agent: spend in the period, burn-rate forecast, alerts and pacing.

Pure domain code (no I/O, no wall clock): time is the events' time. Periods are UTC calendar
days or months.

Burn rate and forecast
----------------------
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

Alerts (:class:`~finops.common.alerts.Alert`, ``kind="budget"``)
----------------------------------------------------------------
Each alert's ``details`` hold ``alert_type``, the budget, the threshold, spend, limit and
forecast, the period and the event time that raised it.

* ``alert_type="threshold"``: once per threshold (default 80 % and 100 %) per period, when the
  actual spend reaches ``threshold x limit`` (one event crossing both gives both, in order).
* ``alert_type="forecast_exceeds"``: once per period, when the forecast exceeds the limit
  while the spend is still below it: the early warning.

``alert_id`` is a UUID5 of ``budget id | period start | threshold`` (or ``forecast``): re-
processing the same events after a restart yields the same ids, so a consumer can dedupe.

Pacing
------
:meth:`BudgetTracker.pacing` turns the forecast into a constraint the recommendation policy can
apply: ``max_cost_per_call_usd = remaining budget / expected remaining calls`` with action
``"none"`` (forecast within ``(1 - headroom) x limit``), ``"step_down"`` (prefer arms whose
expected cost per call is at most that cap) or ``"exhausted"`` (budget spent: cap 0, use the
cheapest arm). Overspending makes the cap fall as the period advances; following it lowers
the burn rate and relaxes it again.

The tracker does not dedupe events: feed it the events :meth:`SpendAnalytics.observe
<finops.optimizer.domain.analytics.SpendAnalytics.observe>` accepted (True).
"""

from __future__ import annotations

import calendar
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from finops.common.alerts import Alert
from finops.optimizer.domain import ALERT_SOURCE
from finops.optimizer.domain.eventtime import (
    WINDOWABLE_FROM,
    WINDOWABLE_UNTIL,
    epoch_seconds,
    iso_utc,
)

__all__ = [
    "PERIODS",
    "SCOPES",
    "Budget",
    "BudgetTracker",
    "alert_id",
    "period_bounds",
]

SCOPES = ("team", "agent")
PERIODS = ("day", "month")
STATE_VERSION = 1
HOUR = 3600
MIN_CURRENT_HOUR_S = 900
RUNAWAY_FACTOR = 2.0
MIN_OBSERVED_S = 3600
DEFAULT_HALF_LIFE_H = {"day": 3.0, "month": 24.0}
_NAMESPACE = uuid.UUID("6f1c3c1e-5d2b-4d8e-9a43-6a1b0c7e2f10")
_ACTION_RANK = {"exhausted": 0, "step_down": 1, "none": 2}


def period_bounds(period: str, ts: float) -> tuple[float, float]:
    """``(start, end)`` (epoch seconds, UTC) of the day or month containing ``ts``.

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


def alert_id(budget_id: str, period_start: float, label: str) -> str:
    """Deterministic alert id: UUID5 of ``budget|<id>|<period start>|<label>``."""
    return str(uuid.uuid5(_NAMESPACE, f"budget|{budget_id}|{iso_utc(period_start)}|{label}"))


def _label(threshold: float) -> str:
    return f"{threshold:g}"


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


class _State:
    __slots__ = (
        "call_ewma",
        "calls",
        "fired",
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
        self.late = 0

    def pack(self) -> list[Any]:
        return [getattr(self, s) for s in _State.__slots__]

    @classmethod
    def unpack(cls, p: list[Any]) -> _State:
        st = cls(0.0, 0.0)
        for name, value in zip(_State.__slots__, p, strict=True):
            setattr(st, name, value)
        st.fired = list(st.fired)
        return st


class BudgetTracker:
    """Spend per budget and period, burn-rate forecast, alerts and pacing.

    Parameters
    ----------
    budgets
        Initial budgets.
    half_life_hours
        Half-life of the hourly burn-rate EWMA per period kind
        (default ``{"day": 3, "month": 24}``).
    pacing_headroom
        Pacing steps down once the forecast exceeds ``(1 - headroom) x limit``.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    >>> bt = BudgetTracker([Budget("b", "agent", "bot", "day", 10.0)])
    >>> def burn(hours, alerts):  # $0.125 every 10 minutes: $18 a day
    ...     for minute in range(hours[0] * 60, hours[1] * 60, 10):
    ...         at = t0 + timedelta(minutes=minute)
    ...         alerts += bt.observe_cost("agent", "bot", at, 0.125)
    >>> alerts = []
    >>> burn((0, 6), alerts)
    >>> def brief(a):
    ...     return a.details["alert_type"], a.details["threshold"], a.details["time"][11:16]
    >>> [brief(a) for a in alerts]
    [('forecast_exceeds', 1.0, '00:30')]
    >>> p = bt.pacing("b")
    >>> p["action"], round(p["max_cost_per_call_usd"], 4), p["current_cost_per_call_usd"]
    ('step_down', 0.0505, 0.125)
    >>> burn((6, 24), alerts)
    >>> [brief(a) for a in alerts[1:]]
    [('threshold', 0.8, '10:30'), ('threshold', 1.0, '13:10')]
    >>> bt.pacing("b")["action"]
    'exhausted'
    """

    def __init__(
        self,
        budgets: Iterable[Budget] = (),
        half_life_hours: Mapping[str, float] | None = None,
        pacing_headroom: float = 0.05,
    ) -> None:
        self.half_life_hours = dict(DEFAULT_HALF_LIFE_H)
        if half_life_hours:
            self.half_life_hours.update({k: float(v) for k, v in half_life_hours.items()})
        self.pacing_headroom = float(pacing_headroom)
        self._budgets: dict[str, Budget] = {}
        self._states: dict[str, _State] = {}
        self._index: dict[tuple[str, str], list[str]] = {}
        self._watermark: float | None = None
        for b in budgets:
            self.set_budget(b)

    # ------------------------------------------------------------------ budgets
    def set_budget(self, budget: Budget) -> None:
        """Add or replace a budget. Its period state is kept when scope, subject and period
        are unchanged (a new limit then applies to the spend so far)."""
        old = self._budgets.get(budget.id)
        if old is not None:
            self._unindex(old)
            if (old.scope, old.subject, old.period) != (
                budget.scope,
                budget.subject,
                budget.period,
            ):
                self._states.pop(budget.id, None)
        self._budgets[budget.id] = budget
        self._index.setdefault((budget.scope, budget.subject), []).append(budget.id)

    def remove_budget(self, budget_id: str) -> bool:
        b = self._budgets.pop(budget_id, None)
        if b is None:
            return False
        self._unindex(b)
        self._states.pop(budget_id, None)
        return True

    def _unindex(self, b: Budget) -> None:
        ids = self._index.get((b.scope, b.subject), [])
        if b.id in ids:
            ids.remove(b.id)
        if not ids:
            self._index.pop((b.scope, b.subject), None)

    def get(self, budget_id: str) -> Budget | None:
        return self._budgets.get(budget_id)

    def budgets(self) -> list[Budget]:
        return [self._budgets[k] for k in sorted(self._budgets)]

    # ------------------------------------------------------------------ ingestion
    def observe(self, event: Any) -> list[Alert]:
        """Apply one ``LlmCallEvent`` (agent and team budgets); unpriced calls count 0 USD."""
        d = event.data
        if not self._index:
            return []
        ts = event.time.timestamp()
        cost = d.cost_usd or 0.0
        alerts: list[Alert] = []
        for key in (("agent", d.agent_id), ("team", d.team)):
            ids = self._index.get(key)  # type: ignore[arg-type]
            if ids:
                for bid in ids:
                    alerts.extend(self._apply(bid, ts, cost, 1))
        return alerts

    def observe_cost(
        self,
        scope: str,
        subject: str,
        time: datetime | float,
        cost_usd: float | None,
        calls: int = 1,
    ) -> list[Alert]:
        """Apply spend of ``calls`` calls to every budget of ``(scope, subject)``."""
        ts = epoch_seconds(time)
        alerts: list[Alert] = []
        for bid in self._index.get((scope, subject), ()):
            alerts.extend(self._apply(bid, ts, cost_usd or 0.0, calls))
        return alerts

    def seed(
        self, budget_id: str, spend_usd: float, calls: int, at: datetime | float
    ) -> list[Alert]:
        """Set the spend so far in the period containing ``at`` (e.g. from the analytics' day
        windows when a budget is created mid-period); alerts it crosses are returned."""
        b = self._budgets[budget_id]
        ts = epoch_seconds(at)
        start, end = period_bounds(b.period, ts)
        st = self._states.get(budget_id)
        if st is None or st.period_start != start:
            st = self._states[budget_id] = self._fresh(st, start, end)
        st.spend = float(spend_usd)
        st.calls = int(calls)
        if st.first_ts is None or st.first_ts > start:
            st.first_ts = start  # the seeded spend accrued since the period start
        return self._check(b, st, ts)

    @staticmethod
    def _fresh(prev: _State | None, start: float, end: float) -> _State:
        st = _State(start, end)
        if prev is not None:  # burn-rate memory carries over periods
            st.rate_ewma, st.call_ewma = prev.rate_ewma, prev.call_ewma
            st.hour_start, st.hour_spend, st.hour_calls = (
                prev.hour_start,
                prev.hour_spend,
                prev.hour_calls,
            )
            st.hour_first_ts, st.hour_first_cost = prev.hour_first_ts, prev.hour_first_cost
            st.first_ts, st.last_ts = prev.first_ts, prev.last_ts
        return st

    def _apply(self, bid: str, ts: float, cost: float, calls: int) -> list[Alert]:
        b = self._budgets[bid]
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts
        st = self._states.get(bid)
        if st is None or ts >= st.period_end:
            start, end = period_bounds(b.period, ts)
            st = self._states[bid] = self._fresh(st, start, end)
        elif ts < st.period_start:
            st.late += 1  # belongs to a finished period
            return []
        self._roll_hour(b, st, ts)
        st.spend += cost
        st.calls += calls
        if st.hour_start is not None and ts >= st.hour_start:
            if st.hour_first_ts is None or ts < st.hour_first_ts:
                st.hour_first_ts, st.hour_first_cost = ts, cost
            st.hour_spend += cost
            st.hour_calls += calls
        if st.first_ts is None:
            st.first_ts = ts
        if st.last_ts is None or ts > st.last_ts:
            st.last_ts = ts
        return self._check(b, st, ts)

    def _alpha(self, b: Budget) -> float:
        return 1.0 - 0.5 ** (1.0 / max(self.half_life_hours[b.period], 1e-9))

    def _roll_hour(self, b: Budget, st: _State, ts: float) -> None:
        hour = math.floor(ts / HOUR) * HOUR
        if st.hour_start is None:
            st.hour_start = float(hour)
            return
        if hour <= st.hour_start:
            return
        a = self._alpha(b)
        observed = float(HOUR)
        if st.rate_ewma is None and st.first_ts is not None:
            observed = max(st.hour_start + HOUR - max(st.first_ts, st.hour_start), 60.0)
        r, c = st.hour_spend / observed, st.hour_calls / observed
        if st.rate_ewma is None or st.call_ewma is None:
            st.rate_ewma, st.call_ewma = r, c
        else:
            st.rate_ewma += a * (r - st.rate_ewma)
            st.call_ewma += a * (c - st.call_ewma)
        empty = int((hour - st.hour_start) // HOUR) - 1
        if empty > 0:
            decay = (1.0 - a) ** empty
            st.rate_ewma *= decay
            st.call_ewma *= decay
        st.hour_start = float(hour)
        st.hour_spend = 0.0
        st.hour_calls = 0
        st.hour_first_ts = None
        st.hour_first_cost = 0.0

    # ------------------------------------------------------------------ forecast
    @staticmethod
    def _rates(st: _State, ts: float) -> tuple[float, float]:
        """Burn rate (USD/s) and call rate (calls/s) at ``ts``."""
        if st.rate_ewma is None or st.call_ewma is None:
            since = max(st.first_ts if st.first_ts is not None else ts, st.period_start)
            span = max(ts - since, MIN_OBSERVED_S)
            return st.spend / span, st.calls / span
        rate, crate = st.rate_ewma, st.call_ewma
        if (
            st.hour_first_ts is not None
            and st.hour_calls > 1
            and st.hour_start is not None
            and ts >= st.hour_start
        ):
            span = max(ts - st.hour_first_ts, MIN_CURRENT_HOUR_S)
            current = (st.hour_spend - st.hour_first_cost) / span
            if current > RUNAWAY_FACTOR * rate:
                rate = current
                crate = max(crate, (st.hour_calls - 1) / span)
        return rate, crate

    def _forecast(self, st: _State, ts: float) -> float:
        rate, _ = self._rates(st, ts)
        return st.spend + rate * max(st.period_end - ts, 0.0)

    def _check(self, b: Budget, st: _State, ts: float) -> list[Alert]:
        alerts: list[Alert] = []
        forecast = self._forecast(st, ts)
        for th in b.alert_thresholds:
            label = _label(th)
            if label not in st.fired and st.spend >= th * b.limit_usd:
                st.fired.append(label)
                pct = round(th * 100)
                alerts.append(
                    self._alert(
                        b,
                        st,
                        ts,
                        "threshold",
                        label,
                        th,
                        forecast,
                        "critical" if th >= 1.0 else "warning",
                        f"{b.scope} {b.subject!r} has spent ${st.spend:.2f}, {pct}% or more of "
                        f"its ${b.limit_usd:.2f} {b.period} budget "
                        f"(period from {iso_utc(st.period_start)[:10]})",
                    )
                )
        if "forecast" not in st.fired and st.spend < b.limit_usd and forecast > b.limit_usd:
            st.fired.append("forecast")
            left_h = (b.limit_usd - st.spend) / max(self._rates(st, ts)[0], 1e-18) / HOUR
            alerts.append(
                self._alert(
                    b,
                    st,
                    ts,
                    "forecast_exceeds",
                    "forecast",
                    1.0,
                    forecast,
                    "warning",
                    f"{b.scope} {b.subject!r} is forecast to spend ${forecast:.2f} against its "
                    f"${b.limit_usd:.2f} {b.period} budget; at the current burn rate it breaks "
                    f"in about {left_h:.1f} h, before the period ends at "
                    f"{iso_utc(st.period_end)}",
                )
            )
        return alerts

    @staticmethod
    def _alert(
        b: Budget,
        st: _State,
        ts: float,
        alert_type: str,
        label: str,
        threshold: float,
        forecast: float,
        severity: str,
        message: str,
    ) -> Alert:
        return Alert(
            kind="budget",
            alert_id=alert_id(b.id, st.period_start, label),
            subject=b.subject,
            severity=severity,
            message=message,
            source=ALERT_SOURCE,
            details={
                "alert_type": alert_type,  # "threshold" | "forecast_exceeds"
                "budget_id": b.id,
                "scope": b.scope,
                "period": b.period,
                "threshold": threshold,
                "spend_usd": st.spend,
                "limit_usd": b.limit_usd,
                "forecast_usd": forecast,
                "period_start": iso_utc(st.period_start),
                "period_end": iso_utc(st.period_end),
                "time": iso_utc(ts),
            },
        )

    # ------------------------------------------------------------------ queries
    def _view(self, b: Budget, at: datetime | float | None) -> tuple[_State, float]:
        """The budget's state as of ``at`` (default: the newest event time seen)."""
        st = self._states.get(b.id)
        if at is not None:
            ts = epoch_seconds(at)
        elif st is not None and st.last_ts is not None:
            ts = max(st.last_ts, self._watermark or st.last_ts)
        else:
            ts = self._watermark if self._watermark is not None else 0.0
        start, end = period_bounds(b.period, ts)
        if st is None or st.period_start < start:
            st = self._fresh(st, start, end)
        elif st.hour_start is not None and ts >= st.hour_start + HOUR:
            st = _State.unpack(st.pack())  # roll the hour on a copy: queries never mutate
            self._roll_hour(b, st, ts)
        return st, ts

    def status(self, budget_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        """Spend, forecast, fired alerts and pacing of one budget (JSON-ready)."""
        b = self._budgets[budget_id]
        st, ts = self._view(b, at)
        rate, crate = self._rates(st, ts)
        return {
            "budget": b.to_dict(),
            "period_start": iso_utc(st.period_start),
            "period_end": iso_utc(st.period_end),
            "as_of": iso_utc(ts),
            "spend_usd": st.spend,
            "calls": st.calls,
            "used_fraction": st.spend / b.limit_usd,
            "burn_rate_usd_per_hour": rate * HOUR,
            "calls_per_hour": crate * HOUR,
            "forecast_usd": self._forecast(st, ts),
            "alerts_fired": list(st.fired),
            "late_events": st.late,
            "pacing": self._pacing(b, st, ts),
        }

    def statuses(self, at: datetime | float | None = None) -> list[dict[str, Any]]:
        return [self.status(bid, at) for bid in sorted(self._budgets)]

    def pacing(self, budget_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        """Pacing recommendation of one budget (see the module docstring)."""
        b = self._budgets[budget_id]
        st, ts = self._view(b, at)
        return self._pacing(b, st, ts)

    def pacing_for(
        self,
        agent_id: str | None = None,
        team: str | None = None,
        at: datetime | float | None = None,
    ) -> dict[str, Any] | None:
        """The strictest pacing among the budgets of this agent and team (None: no budget)."""
        best: dict[str, Any] | None = None
        for key in (("agent", agent_id), ("team", team)):
            if key[1] is None:
                continue
            for bid in self._index.get(key, ()):  # type: ignore[arg-type]
                p = self.pacing(bid, at)
                if best is None or (_ACTION_RANK[p["action"]], p["max_cost_per_call_usd"]) < (
                    _ACTION_RANK[best["action"]],
                    best["max_cost_per_call_usd"],
                ):
                    best = p
        return best

    def _pacing(self, b: Budget, st: _State, ts: float) -> dict[str, Any]:
        rate, crate = self._rates(st, ts)
        left_s = max(st.period_end - ts, 0.0)
        forecast = st.spend + rate * left_s
        remaining = b.limit_usd - st.spend
        expected_calls = crate * left_s
        if crate > 0:
            current = rate / crate
        elif st.calls:
            current = st.spend / st.calls
        else:
            current = None
        if remaining <= 0:
            action, cap = "exhausted", 0.0
            reason = (
                f"{b.period} budget of ${b.limit_usd:.2f} exhausted (${st.spend:.2f} spent): "
                "use the cheapest acceptable arm"
            )
        else:
            cap = remaining / expected_calls if expected_calls >= 1 else remaining
            if forecast > (1.0 - self.pacing_headroom) * b.limit_usd:
                action = "step_down"
                reason = (
                    f"forecast ${forecast:.2f} exceeds {100 * (1 - self.pacing_headroom):.0f}% of "
                    f"the ${b.limit_usd:.2f} {b.period} budget: keep the expected cost per call "
                    f"at or below ${cap:.6f} (${remaining:.2f} left for about "
                    f"{expected_calls:.0f} calls)"
                )
            else:
                action = "none"
                reason = f"on pace: forecast ${forecast:.2f} of ${b.limit_usd:.2f}"
        ratio = None
        if current is not None and current > 0:
            ratio = min(cap / current, 1.0) if action != "none" else cap / current
        return {
            "budget_id": b.id,
            "scope": b.scope,
            "subject": b.subject,
            "action": action,
            "max_cost_per_call_usd": cap,
            "current_cost_per_call_usd": current,
            "cost_ratio": ratio,
            "remaining_usd": remaining,
            "expected_remaining_calls": expected_calls,
            "spend_usd": st.spend,
            "forecast_usd": forecast,
            "limit_usd": b.limit_usd,
            "period_end": iso_utc(st.period_end),
            "reason": reason,
        }

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "half_life_hours": dict(self.half_life_hours),
            "pacing_headroom": self.pacing_headroom,
            "watermark": self._watermark,
            "budgets": [b.to_dict() for b in self.budgets()],
            "states": {bid: st.pack() for bid, st in sorted(self._states.items())},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> BudgetTracker:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported budget state version {state.get('version')!r}")
        bt = cls(
            (Budget.from_dict(d) for d in state["budgets"]),
            half_life_hours=state["half_life_hours"],
            pacing_headroom=state["pacing_headroom"],
        )
        bt._watermark = state["watermark"]
        bt._states = {bid: _State.unpack(p) for bid, p in state["states"].items()}
        return bt
