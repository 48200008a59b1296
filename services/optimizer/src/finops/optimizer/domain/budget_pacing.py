"""Budget pacing: the forecast turned into a constraint on the cost per call (pure domain code).

:func:`pacing_of` gives ``max_cost_per_call_usd = remaining budget / expected remaining calls``
with action ``"none"`` (forecast within ``(1 - headroom) x limit``), ``"step_down"`` (prefer
arms whose expected cost per call is at most that cap) or ``"exhausted"`` (budget spent: cap 0,
use the cheapest arm). Overspending makes the cap fall as the period advances; following it
lowers the burn rate and relaxes it again.

Before the budget has counted a call there is no call rate to divide by: the cap and the
expected remaining calls are ``None`` (not the whole remaining budget for one call), and a
step-down then has no cap to name (a recommendation takes the cheapest arm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from finops.optimizer.domain.budget_definitions import Budget, usd
from finops.optimizer.domain.burn_rate import BurnState
from finops.optimizer.domain.eventtime import iso_utc

__all__ = ["pacing_of", "stricter"]

_ACTION_RANK = {"exhausted": 0, "step_down": 1, "none": 2}


@dataclass(frozen=True)
class _Outlook:
    """What is left of a budget's period as of one time, at the current burn rate."""

    forecast: float
    remaining: float
    expected_calls: float | None  # None: no call rate yet
    current: float | None  # the cost per call now (None before any call)


def _outlook(b: Budget, st: BurnState, ts: float) -> _Outlook:
    rate, crate = st.rates(ts)
    left_s = max(st.period_end - ts, 0.0)
    if crate > 0:
        current = rate / crate
    elif st.calls:
        current = st.spend / st.calls
    else:
        current = None
    return _Outlook(
        forecast=st.spend + rate * left_s,
        remaining=b.limit_usd - st.spend,
        expected_calls=crate * left_s if crate > 0 else None,
        current=current,
    )


def _decision(
    b: Budget, st: BurnState, seen: _Outlook, headroom: float
) -> tuple[str, float | None, str]:
    """``(action, cap, reason)`` of the pacing (cap None: no call rate to divide by yet)."""
    if seen.remaining <= 0:
        return (
            "exhausted",
            0.0,
            f"{b.period} budget of {usd(b.limit_usd)} exhausted ({usd(st.spend)} spent): "
            "use the cheapest acceptable arm",
        )
    remaining, expected_calls, forecast = seen.remaining, seen.expected_calls, seen.forecast
    over = forecast > (1.0 - headroom) * b.limit_usd
    if expected_calls is None:
        if over:
            return (
                "step_down",
                None,
                f"forecast {usd(forecast)} exceeds {100 * (1 - headroom):.0f}% of the "
                f"{usd(b.limit_usd)} {b.period} budget and there is no call rate yet to pace "
                "by: use the cheapest acceptable arm",
            )
        return (
            "none",
            None,
            f"no calls counted yet: {usd(remaining)} of the {usd(b.limit_usd)} {b.period} "
            "budget left, no cap per call until there is a call rate",
        )
    cap = remaining / expected_calls if expected_calls >= 1 else remaining
    if over:
        return (
            "step_down",
            cap,
            f"forecast {usd(forecast)} exceeds {100 * (1 - headroom):.0f}% of "
            f"the {usd(b.limit_usd)} {b.period} budget: keep the expected cost per call "
            f"at or below ${cap:.6f} ({usd(remaining)} left for about "
            f"{expected_calls:.0f} calls)",
        )
    return "none", cap, f"on pace: forecast {usd(forecast)} of {usd(b.limit_usd)}"


def pacing_of(b: Budget, st: BurnState, ts: float, headroom: float) -> dict[str, Any]:
    """Pacing recommendation of one budget as of ``ts`` (see the module docstring).

    >>> st = BurnState(0.0, 86400.0)
    >>> st.add(0.0, 1.0, 10)  # $1 in 10 calls, then an hour of nothing
    >>> p = pacing_of(Budget("b", "agent", "bot", "day", 20.0), st, 3600.0, headroom=0.05)
    >>> p["action"], round(p["forecast_usd"], 2), round(p["current_cost_per_call_usd"], 6)
    ('step_down', 24.0, 0.1)
    """
    seen = _outlook(b, st, ts)
    action, cap, reason = _decision(b, st, seen, headroom)
    ratio = None
    if cap is not None and seen.current is not None and seen.current > 0:
        ratio = min(cap / seen.current, 1.0) if action != "none" else cap / seen.current
    return {
        "budget_id": b.id,
        "scope": b.scope,
        "subject": b.subject,
        "action": action,
        "max_cost_per_call_usd": cap,
        "current_cost_per_call_usd": seen.current,
        "cost_ratio": ratio,
        "remaining_usd": seen.remaining,
        "expected_remaining_calls": seen.expected_calls,
        "spend_usd": st.spend,
        "forecast_usd": seen.forecast,
        "limit_usd": b.limit_usd,
        "period_end": iso_utc(st.period_end),
        "reason": reason,
    }


def stricter(p: dict[str, Any], than: dict[str, Any] | None) -> bool:
    """Whether pacing ``p`` is stricter than ``than`` (any pacing is stricter than None):
    a stronger action first, then a lower cap (no cap is the loosest)."""
    if than is None:
        return True
    return (_ACTION_RANK[p["action"]], _cap_or_inf(p)) < (
        _ACTION_RANK[than["action"]],
        _cap_or_inf(than),
    )


def _cap_or_inf(p: dict[str, Any]) -> float:
    cap = p["max_cost_per_call_usd"]
    return math.inf if cap is None else float(cap)
