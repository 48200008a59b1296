"""Budgets per team / agent: spend in the period, burn-rate forecast, alerts and pacing.

Pure domain code (no I/O, no wall clock): time is the events' time. Periods are UTC calendar
days or months. :class:`BudgetTracker` routes each call's spend to the budgets of its agent and
team and keeps one :class:`~.burn_rate.BurnState` per budget; the parts live by role:

* :mod:`.budget_definitions`: :class:`~.budget_definitions.Budget` and the periods;
* :mod:`.burn_rate`: spend, calls, the burn-rate EWMA and the forecast of one budget;
* :mod:`.budget_alerts`: the threshold and ``forecast_exceeds`` alerts
  (:class:`~finops.common.alerts.Alert`, ``kind="budget"``, deterministic ``alert_id``);
* :mod:`.budget_pacing`: the forecast turned into a cap on the cost per call that the
  recommendation policy applies (:meth:`BudgetTracker.pacing`).

The tracker does not dedupe events: feed it the events :meth:`SpendAnalytics.observe
<finops.optimizer.domain.analytics.SpendAnalytics.observe>` accepted (True).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finops.common.alerts import Alert
from finops.optimizer.domain.budget_alerts import (
    QuietAlert,
    alert_id,
    check_alerts,
    quiet_alerts,
    rearm,
)
from finops.optimizer.domain.budget_definitions import PERIODS, SCOPES, Budget, period_bounds
from finops.optimizer.domain.budget_pacing import pacing_of, stricter
from finops.optimizer.domain.burn_merge import merged_burn_state
from finops.optimizer.domain.burn_rate import DEFAULT_HALF_LIFE_H, HOUR, BurnState, ewma_alpha
from finops.optimizer.domain.eventtime import epoch_seconds, iso_utc

# Budget, alert_id and period_bounds are re-exported: callers import them from here
__all__ = [
    "PERIODS",
    "SCOPES",
    "Budget",
    "BudgetTracker",
    "alert_id",
    "period_bounds",
]

STATE_VERSION = 1


@dataclass(frozen=True)
class BudgetView:
    """A budget's burn state as of a time (``as_of``: None before any call was seen)."""

    state: BurnState
    as_of: float | None

    @property
    def ts(self) -> float:
        return self.time_of(self.as_of)

    @staticmethod
    def time_of(as_of: float | None) -> float:
        """The time to compute with: ``as_of``, or the epoch before any call (when the
        answers show no period: see :meth:`BudgetTracker.status`)."""
        return 0.0 if as_of is None else as_of


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
        self._states: dict[str, BurnState] = {}
        self._index: dict[tuple[str, str], list[str]] = {}
        self._watermark: float | None = None
        for b in budgets:
            self.set_budget(b)

    # ------------------------------------------------------------------ budgets
    def set_budget(self, budget: Budget) -> None:
        """Add or replace a budget. Its period state is kept when scope, subject and period
        are unchanged: a new limit then applies to the spend so far, and an alert already
        fired fires again when the spend crosses it under the new limit (see
        :func:`~.budget_alerts.rearm`)."""
        old = self._budgets.get(budget.id)
        if old is not None:
            self._unindex(old)
            if (old.scope, old.subject, old.period) != (
                budget.scope,
                budget.subject,
                budget.period,
            ):
                self._states.pop(budget.id, None)
            elif (state := self._states.get(budget.id)) is not None:
                as_of = self._as_of(budget, None)
                if as_of is not None:  # else no call was seen: nothing has fired
                    rearm(budget, state, as_of)
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
        ts = event.time.timestamp()
        self._see(ts)
        if not self._index:
            return []
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
        self._see(ts)
        alerts: list[Alert] = []
        for bid in self._index.get((scope, subject), ()):
            alerts.extend(self._apply(bid, ts, cost_usd or 0.0, calls))
        return alerts

    def _see(self, ts: float) -> None:
        """Move the watermark, the time statuses are as of, to a call's time: every call's,
        counted by a budget or not, so a budget put later is as of the latest call seen."""
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts

    def _apply(self, bid: str, ts: float, cost: float, calls: int) -> list[Alert]:
        b = self._budgets[bid]
        st = self._states.get(bid)
        if st is None or ts >= st.period_end:
            start, end = period_bounds(b.period, ts)
            st = self._states[bid] = BurnState.carried_over(st, start, end)
        elif ts < st.period_start:
            st.late += 1  # belongs to a finished period
            return []
        st.roll_hour(self._alpha(b), ts)
        st.add(ts, cost, calls)
        return check_alerts(b, st, ts)

    def _alpha(self, b: Budget) -> float:
        return ewma_alpha(self.half_life_hours[b.period])

    # ------------------------------------------------------------------ queries
    def _as_of(self, b: Budget, at: datetime | float | None) -> float | None:
        """The time ``b``'s status is as of: ``at``, by default the newest event time seen,
        whether a budget counted that call or not; None before any call was seen (time is
        the events' time: no period is current yet)."""
        if at is not None:
            return epoch_seconds(at)
        st = self._states.get(b.id)
        if st is not None and st.last_ts is not None:
            return max(st.last_ts, self._watermark or st.last_ts)
        return self._watermark

    def _view(self, b: Budget, at: datetime | float | None) -> BudgetView:
        """The budget's state as of :meth:`_as_of`. Before any call was seen, an empty state
        (of the epoch's period, which no answer shows: see :meth:`status`)."""
        as_of = self._as_of(b, at)
        ts = BudgetView.time_of(as_of)
        st = self._states.get(b.id)
        start, end = period_bounds(b.period, ts)
        if st is None or st.period_start < start:
            st = BurnState.carried_over(st, start, end)
        elif st.hour_start is not None and ts >= st.hour_start + HOUR:
            st = BurnState.unpack(st.pack())  # roll the hour on a copy: queries never mutate
            st.roll_hour(self._alpha(b), ts)
        return BudgetView(st, as_of)

    def status(self, budget_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        """Spend, forecast, fired alerts and pacing of one budget (JSON-ready).

        ``as_of`` and the period (``period_start``, ``period_end``, the pacing's
        ``period_end``) are None until a call has been seen (and ``at`` not given): time is
        the events' time, so no period is current yet; spend, calls and rates are then 0.
        """
        b = self._budgets[budget_id]
        view = self._view(b, at)
        st, as_of = view.state, view.as_of
        rate, crate = st.rates(view.ts)
        return {
            "budget": b.to_dict(),
            "period_start": None if as_of is None else iso_utc(st.period_start),
            "period_end": None if as_of is None else iso_utc(st.period_end),
            "as_of": None if as_of is None else iso_utc(as_of),
            "spend_usd": st.spend,
            "calls": st.calls,
            "used_fraction": st.spend / b.limit_usd,
            "burn_rate_usd_per_hour": rate * HOUR,
            "calls_per_hour": crate * HOUR,
            "forecast_usd": st.forecast(view.ts),
            "alerts_fired": list(st.fired),
            "late_events": st.late,
            "pacing": self._pacing(b, view),
        }

    def statuses(self, at: datetime | float | None = None) -> list[dict[str, Any]]:
        return [self.status(bid, at) for bid in sorted(self._budgets)]

    def pacing(self, budget_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        """Pacing recommendation of one budget (see :mod:`.budget_pacing`)."""
        b = self._budgets[budget_id]
        return self._pacing(b, self._view(b, at))

    def _pacing(self, b: Budget, view: BudgetView) -> dict[str, Any]:
        pacing = pacing_of(b, view.state, view.ts, self.pacing_headroom)
        if view.as_of is None:
            pacing["period_end"] = None  # no call seen: no period is current yet
        return pacing

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
                if stricter(p, best):
                    best = p
        return best

    def due_alerts(self, at: datetime | float | None = None) -> list[Alert]:
        """The threshold and forecast alerts whose condition holds as of ``at`` (default: the
        newest event time), whether fired before or not: for a tracker that does not fire
        alerts itself (:meth:`merged`). The ids are deterministic per budget, period and
        threshold, so a caller that polls skips the ids it has sent; an alert whose condition
        no longer holds at the next poll (a forecast that fell back, a period that ended) is
        not reported.
        """
        alerts: list[Alert] = []
        for b in self.budgets():
            view = self._view(b, at)
            if view.as_of is None:
                continue  # no call seen: nothing spent, nothing to alert about
            unfired = BurnState.unpack(view.state.pack())
            unfired.fired = []
            alerts += check_alerts(b, unfired, view.as_of)
        return alerts

    def quiet_alerts(self, at: datetime | float | None = None) -> list[QuietAlert]:
        """The alerts whose condition does not hold as of ``at`` (default: the newest event
        time) under each budget's limit now: a tracker that does not fire alerts itself
        (:meth:`merged`) raises again one of them raised before, once it is due, as
        :func:`~finops.optimizer.domain.budget_alerts.rearm` has one worker do after a new
        limit. Budgets with no call seen have none."""
        quiet: list[QuietAlert] = []
        for b in self.budgets():
            view = self._view(b, at)
            if view.as_of is not None:
                quiet += quiet_alerts(b, view.state, view.as_of)
        return quiet

    @classmethod
    def merged(cls, parts: Iterable[BudgetTracker]) -> BudgetTracker:
        """The tracker of the union of parts that saw disjoint events (e.g. one per
        ``task_type`` partition), a read-only view: its alerts come from :meth:`due_alerts`.

        The budget definitions, half-lives and pacing headroom are the first part's (operator
        commands reach every partition, so they are the same in every part); a part's state of
        a budget whose scope, subject or period differs there (a change not yet applied) is
        left out. Spend and calls are exact; so are the burn-rate EWMAs (summed after aligning
        each part to the newest hour) for calls in time order (see :mod:`.burn_merge`).

        >>> t0 = 1735689600.0  # 2025-01-01T00:00:00Z
        >>> b = Budget("b", "agent", "bot", "day", 1.0)
        >>> qa, code = BudgetTracker([b]), BudgetTracker([b])
        >>> _ = qa.observe_cost("agent", "bot", t0, 0.5)
        >>> _ = code.observe_cost("agent", "bot", t0 + 60, 0.375)
        >>> fleet = BudgetTracker.merged([qa, code])
        >>> fleet.status("b")["spend_usd"], fleet.status("b")["calls"]
        (0.875, 2)
        >>> [a.details["threshold"] for a in fleet.due_alerts()]
        [0.8, 1.0]
        """
        parts = list(parts)
        if not parts:
            return cls()
        first = parts[0]
        merged = cls(first.budgets(), first.half_life_hours, first.pacing_headroom)
        watermarks = [p._watermark for p in parts if p._watermark is not None]
        merged._watermark = max(watermarks) if watermarks else None
        for b in merged.budgets():
            states = [
                p._states[b.id]
                for p in parts
                if b.id in p._states and _same_accounting(p._budgets[b.id], b)
            ]
            if states:
                merged._states[b.id] = merged_burn_state(b, states, merged._alpha(b))
        return merged

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
        bt._states = {bid: BurnState.unpack(p) for bid, p in state["states"].items()}
        return bt


def _same_accounting(one: Budget, other: Budget) -> bool:
    """Whether a state kept for budget ``one`` counts the calls ``other`` counts."""
    return (one.scope, one.subject, one.period) == (other.scope, other.subject, other.period)
