"""The planner's dual solve: on a window of requests, every request's arms form a cost/quality
hull; its breakpoints ``delta quality / delta cost``, taken in increasing order while the
quality budget lasts, give the shadow price ``mu`` (see :mod:`.planner`, step 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .config import Objective
from .estimates import Estimates
from .scoring import INF, argmax, feasible, utilities

__all__ = ["Breakpoint", "WindowHull", "add_request", "breakpoint_groups", "solve_price"]


@dataclass(frozen=True, order=True)
class Breakpoint:
    """Price at which one request switches to the next cheaper arm, and the quality change."""

    price: float
    quality_change: float


@dataclass
class WindowHull:
    base_q: float = 0.0  # planned quality at price 0
    ref_q: float = 0.0  # reference quality on the window
    breaks: list[Breakpoint] = field(default_factory=list)


def add_request(hull: WindowHull, obj: Objective, est: Estimates) -> None:
    """Add one request: its best feasible arm at price 0, then walk the upper cost/quality
    hull towards cheaper arms, one breakpoint per step."""
    qs, cs = est.quality, est.cost
    ok = feasible(obj, est)
    if not any(ok):
        hull.base_q += max(qs)
        return
    if obj.wtp_per_usd is not None:
        us = utilities(obj, obj.wtp_per_usd, est)
        hull.base_q += qs[argmax(us, cs, ok)]
        return
    u0 = utilities(obj, 0.0, est)
    j = argmax(u0, cs, ok)
    hull.base_q += qs[j]
    while True:
        best_k, best_bp = -1, INF
        for i in range(len(qs)):
            if ok[i] and cs[i] < cs[j]:
                bp = (u0[j] - u0[i]) / (cs[j] - cs[i])
                if bp < best_bp or (bp == best_bp and cs[i] < cs[best_k]):
                    best_k, best_bp = i, bp
        if best_k < 0:
            break
        hull.breaks.append(Breakpoint(max(best_bp, 0.0), qs[best_k] - qs[j]))
        j = best_k


def solve_price(hull: WindowHull, t_eff: float) -> tuple[float, float, float]:
    """Shadow price whose planned fleet quality on the window is ``t_eff``.

    Returns ``(mu_lo, mu_hi, f)``: the breakpoints of all window requests are taken in
    increasing order while the quality budget lasts; the requests at the marginal breakpoint
    are split, a fraction ``f`` of them priced at ``mu_hi`` (switched to the cheaper arm)
    and the rest at ``mu_lo``.  This randomised rounding matters when many requests share a
    breakpoint (no prompt features, or a single task type).
    """
    budget = hull.base_q - t_eff * hull.ref_q
    if budget <= 0:
        return 0.0, 0.0, 0.0
    if not hull.breaks:
        # the quality target is slack and nothing cheaper is left: only cost matters
        return INF, INF, 0.0
    loss = 0.0
    last = 0.0
    for bp, group_loss, nxt in breakpoint_groups(sorted(hull.breaks)):
        if loss + group_loss > budget:
            frac = (budget - loss) / group_loss if group_loss > 0 else 0.0
            return 0.5 * (last + bp), 0.5 * (bp + nxt), frac
        loss += group_loss
        last = bp
    # every switch is affordable: the quality constraint is slack, only cost matters
    return INF, INF, 0.0


def breakpoint_groups(breaks: list[Breakpoint]) -> Iterator[tuple[float, float, float]]:
    """Sorted breakpoints grouped by price (within a relative 1e-9): ``(price, quality lost,
    next group's price)``; the last group's "next" price is 4 x its own."""
    i, n = 0, len(breaks)
    while i < n:
        bp = breaks[i].price
        j = i
        group_loss = 0.0
        while j < n and breaks[j].price <= bp * (1.0 + 1e-9) + 1e-300:
            group_loss -= breaks[j].quality_change
            j += 1
        yield bp, group_loss, breaks[j].price if j < n else 4.0 * bp
        i = j
