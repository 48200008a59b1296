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
  EWMA yet and adds nothing to it, as in one tracker); the first and the current hour's first
  call are the earliest of the parts' (on a tie, the first part's: one tracker keeps the one
  that arrived first), the latest call the latest.

Exact: spend, calls (whatever the order of the events) and, for calls in time order, the EWMAs
when every part's first call came at the same time. Approximate: an EWMA starts from its first
closed hour's rate at full weight, measured over the time since the first call (see
:mod:`.burn_rate`), so a part whose first call came later than the union's gives its first hour
the weight ``(1 - alpha) ** k / observed`` where one tracker gives ``alpha (1 - alpha) ** k /
3600`` (``k`` closed hours since). The error of the burn rate is at most the sum over the parts
of ``(1 - alpha) ** k x (spend in the part's first hour) / (the shorter of the two observed
spans)``: it fades with the EWMA's half-life (3 hours for day budgets, 24 for month budgets).
The same holds for the call rate, so for the forecast and the pacing derived from them.

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
from finops.optimizer.domain.burn_rate import BurnState

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
    merged.fired = [
        threshold_label(th) for th in b.alert_thresholds if merged.spend >= th * b.limit_usd
    ]
    if any(FORECAST_LABEL in st.fired for st in copies):
        merged.fired.append(FORECAST_LABEL)
    return merged


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
