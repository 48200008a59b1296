"""The burn state of one budget over the union of disjoint event streams (pure domain code).

When the optimizer is split into partitions by ``task_type``, an agent's or a team's calls can
reach several partitions, and each partition's :class:`~.budgets.BudgetTracker` holds a
:class:`~.burn_rate.BurnState` of the calls it saw. :func:`merged_burn_state` combines them
into the state one tracker fed every call would hold:

* each part is first *aligned*: carried over to the newest period among the parts and its hour
  rolled to the newest hour among them (what one tracker does when a later call arrives);
* the period's spend and calls, the current hour's spend and calls, and the burn-rate and
  call-rate EWMAs are then summed: after alignment every term of an EWMA is a closed hour's
  rate weighted by ``alpha`` and the decay of the hours since, the same weights in every part,
  so the sum is one tracker's EWMA (a part whose calls all fall in the current hour has no
  EWMA yet and adds nothing to it, as in one tracker) but for the first closed hour of each
  part, which started its EWMA at full weight over the time since its first call (see
  :mod:`.burn_rate`): each part's :class:`~.burn_rate.FirstHour` is reweighted to what one
  tracker gives it (full weight over the union's observed span for the union's first hour,
  ``alpha`` over an hour for a later one);
* the first and the current hour's first call are the earliest of the parts' (on a tie, the
  first part's: one tracker keeps the one that arrived first), the latest call the latest.

Exact (up to float rounding): spend and calls whatever the order of the events; for calls in
time order, the EWMAs too, and so the forecast and the pacing. A part restored from a state
packed before the first hour was kept (``first_hour`` None) leaves the EWMAs summed as they are:
a part whose first call came later than the union's then gives its first hour the weight
``(1 - alpha) ** k / observed`` where one tracker gives ``alpha (1 - alpha) ** k / 3600`` (``k``
closed hours since), so the burn rate is off by at most the sum over the parts of ``(1 - alpha)
** k x (spend in the part's first hour) / (the shorter of the two observed spans)``, fading with
the EWMA's half-life (3 hours for day budgets, 24 for month budgets); likewise the call rate.
For calls out of time order one tracker's EWMAs depend on the order the calls arrived in (a
call of an hour already closed enters no EWMA), which no part knows.

Two figures are the parts' and not exactly one tracker's: ``late`` (the parts' sum, a lower
bound: an event late in its part is late in the union) and ``fired``, which lists the thresholds
the merged spend reached (exactly those one tracker fired, spend only grows in a period) and
``"forecast"`` when a part fired it (one tracker may have fired it when no part did: its
forecast is the sum of the parts'). Alerts of the merged state are best taken from
:meth:`.budgets.BudgetTracker.due_alerts`, which does not depend on ``fired``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from finops.optimizer.domain.budget_alerts import FORECAST_LABEL, threshold_label
from finops.optimizer.domain.budget_definitions import Budget
from finops.optimizer.domain.burn_rate import HOUR, BurnState, FirstHour

__all__ = ["aligned", "merged_burn_state"]


def aligned(st: BurnState, alpha: float, period: tuple[float, float], hour: float) -> BurnState:
    """A copy of ``st`` carried over to ``period`` (``(start, end)``, if it is later) with its
    hour rolled to ``hour`` (if it is later): its figures as one tracker would hold them.

    >>> st = BurnState(0.0, 86400.0)
    >>> st.roll_hour(0.5, 82800.0)  # $2 at 23:00
    >>> st.add(82800.0, 2.0, 1)
    >>> later = aligned(st, 0.5, (86400.0, 172800.0), 90000.0)  # the next day, 01:00
    >>> later.spend, later.hour_start, later.rate_ewma * 3600, st.spend  # 2 $/h, decayed 1 h
    (0.0, 90000.0, 1.0, 2.0)
    """
    copy = BurnState.unpack(st.pack())
    start, end = period
    if copy.period_start < start:
        copy = BurnState.carried_over(copy, start, end)
    copy.roll_hour(alpha, hour)
    return copy


def merged_burn_state(b: Budget, parts: Sequence[BurnState], alpha: float) -> BurnState:
    """The state of budget ``b`` over the union of the parts' calls (see the module docstring
    for what is exact); ``alpha`` is the EWMA weight of ``b``'s period. The parts are left
    unchanged.

    Examples
    --------
    >>> def fed(calls):  # (time in s, USD) in time order, a day budget
    ...     st = BurnState(0.0, 86400.0)
    ...     for ts, cost in calls:
    ...         st.roll_hour(0.2, ts)
    ...         st.add(ts, cost, 1)
    ...     return st
    >>> qa = [(0.0, 1.0), (4000.0, 1.0), (7300.0, 0.5)]
    >>> code = [(0.0, 2.0), (5000.0, 0.25)]
    >>> b = Budget("b", "agent", "bot", "day", 5.0)
    >>> merged = merged_burn_state(b, [fed(qa), fed(code)], alpha=0.2)
    >>> one = fed(sorted(qa + code))
    >>> merged.spend, merged.calls, merged.fired
    (4.75, 5, ['0.8'])
    >>> round(merged.forecast(7300.0), 9) == round(one.forecast(7300.0), 9)
    True
    """
    if not parts:
        raise ValueError("merged_burn_state needs at least one part")
    newest = max(parts, key=lambda st: st.period_start)
    hours = [st.hour_start for st in parts if st.hour_start is not None]
    hour = max(hours) if hours else newest.period_start
    copies = [aligned(st, alpha, (newest.period_start, newest.period_end), hour) for st in parts]
    merged = BurnState(newest.period_start, newest.period_end)
    merged.hour_start = hour if hours else None
    for st in copies:
        merged.spend += st.spend
        merged.calls += st.calls
        merged.late += st.late
        merged.hour_spend += st.hour_spend
        merged.hour_calls += st.hour_calls
        if st.hour_first_ts is not None and (
            merged.hour_first_ts is None or st.hour_first_ts < merged.hour_first_ts
        ):
            merged.hour_first_ts, merged.hour_first_cost = st.hour_first_ts, st.hour_first_cost
    merged.first_ts = _earliest(st.first_ts for st in copies)
    merged.last_ts = _latest(st.last_ts for st in copies)
    merged.rate_ewma = _total(st.rate_ewma for st in copies)
    merged.call_ewma = _total(st.call_ewma for st in copies)
    _reweigh_first_hours(merged, copies, alpha)
    merged.fired = [
        threshold_label(th) for th in b.alert_thresholds if merged.spend >= th * b.limit_usd
    ]
    if any(FORECAST_LABEL in st.fired for st in copies):
        merged.fired.append(FORECAST_LABEL)
    return merged


def _reweigh_first_hours(merged: BurnState, copies: Sequence[BurnState], alpha: float) -> None:
    """Give each part's first closed hour, which started its EWMAs at full weight over its
    observed span, the weight one state fed every call gives it: full weight over the union's
    observed span for the union's first hour, ``alpha`` over an hour for a later one. Left as
    summed when a part with an EWMA does not know its first hour (packed before it was kept)."""
    if merged.rate_ewma is None or merged.call_ewma is None or merged.hour_start is None:
        return
    firsts = [st.first_hour for st in copies if st.rate_ewma is not None]
    known = [first for first in firsts if first is not None]
    if len(known) < len(firsts):
        return
    start = min(first.start for first in known)
    union = FirstHour(
        start,
        sum(first.spend for first in known if first.start == start),
        sum(first.calls for first in known if first.start == start),
        max(start + HOUR - max(merged.first_ts or start, start), 60.0),
    )
    for first in known:
        decay = (1.0 - alpha) ** (round((merged.hour_start - first.start) / HOUR) - 1)
        weight = 1.0 / union.observed if first.start == start else alpha / HOUR
        merged.rate_ewma += decay * first.spend * (weight - 1.0 / first.observed)
        merged.call_ewma += decay * first.calls * (weight - 1.0 / first.observed)
    merged.first_hour = union


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _earliest(values: Iterable[float | None]) -> float | None:
    present = _present(values)
    return min(present) if present else None


def _latest(values: Iterable[float | None]) -> float | None:
    present = _present(values)
    return max(present) if present else None


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of the EWMAs that exist (None when no part has one yet)."""
    present = _present(values)
    return sum(present) if present else None
