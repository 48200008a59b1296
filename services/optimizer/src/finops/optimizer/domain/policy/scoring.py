"""Scores and feasibility of arms for one request, and the price of cost in quality units."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .config import Objective, PolicyConfig
from .estimates import Estimates

__all__ = ["INF", "argmax", "feasible", "phi", "price_for", "quality_floor", "utilities"]

INF = float("inf")
_SQRT2 = math.sqrt(2.0)


def phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


def price_for(obj: Objective, config: PolicyConfig, mu: float) -> float:
    """Quality per USD: willingness to pay, else the fleet shadow price ``mu``, else +inf
    (cheapest arm meeting a floor), else 0 (best quality)."""
    if obj.wtp_per_usd is not None:
        return obj.wtp_per_usd
    if config.fleet_quality_target is not None:
        return mu
    if obj.quality_floor is not None or obj.relative_quality_floor is not None:
        return INF
    return 0.0


def quality_floor(obj: Objective, qs: Sequence[float]) -> float | None:
    """The quality an arm must reach: the absolute floor or the relative one (times the best
    estimate), whichever is higher; ``None`` without a floor."""
    floor = obj.quality_floor
    if obj.relative_quality_floor is not None:
        rel = obj.relative_quality_floor * max(qs)
        floor = rel if floor is None else max(floor, rel)
    return floor


def feasible(obj: Objective, est: Estimates) -> list[bool]:
    """Arms meeting the quality floor and the p95 latency ceiling (unknown latency passes)."""
    qs, lats = est.quality, est.latency
    ok = [True] * len(qs)
    floor = quality_floor(obj, qs)
    for i in range(len(qs)):
        if floor is not None and qs[i] < floor - 1e-12:
            ok[i] = False
        if obj.latency_p95_ms is not None:
            lat = lats[i]
            if lat is not None and lat > obj.latency_p95_ms:
                ok[i] = False
    return ok


def utilities(obj: Objective, price: float, est: Estimates) -> list[float]:
    """``q - latency_weight * p95 - price * cost`` per arm (at ``price = inf``: cheapest first,
    ties broken by quality)."""
    lw = obj.latency_weight_per_s
    out = []
    for q, c, lat in zip(est.quality, est.cost, est.latency, strict=True):
        u = q
        if lw and lat is not None:
            u -= lw * lat / 1000.0
        if price == INF:
            u = -c + 1e-9 * u  # cheapest eligible arm, ties broken by quality
        elif price:
            u -= price * c
        out.append(u)
    return out


def argmax(us: Sequence[float], cs: Sequence[float], ok: Sequence[bool]) -> int:
    """Feasible arm with the highest score (the cheaper one on ties); -1 if none is feasible."""
    best = -1
    for i in range(len(us)):
        if not ok[i]:
            continue
        if best < 0 or us[i] > us[best] or (us[i] == us[best] and cs[i] < cs[best]):
            best = i
    return best
