"""Tumbling event-time windows of the spend analytics: sizes, retention, selection (pure).

A window's start is the floor of the event time in UTC to its granularity (:data:`GRANULARITIES`);
each granularity keeps a bounded number of recent windows (:data:`DEFAULT_RETAIN`). The
functions here are the parts of :class:`.analytics.SpendAnalytics` that only look at window
starts: which windows a query returns and which restored windows are unrepresentable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from finops.optimizer.domain.eventtime import iso_utc, windowable

__all__ = [
    "DEFAULT_RETAIN",
    "GRANULARITIES",
    "drop_unrepresentable",
    "retention",
    "select_starts",
    "window_view",
]

#: granularity -> window length in seconds
GRANULARITIES: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
DEFAULT_RETAIN: dict[str, int] = {"minute": 120, "hour": 72, "day": 60}

_Window = TypeVar("_Window")


def retention(retain: Mapping[str, int] | None) -> dict[str, int]:
    """Windows kept per granularity: the defaults overridden by ``retain``.

    >>> retention({"minute": 5})
    {'minute': 5, 'hour': 72, 'day': 60}
    """
    kept = dict(DEFAULT_RETAIN)
    if retain:
        for g, n in retain.items():
            if g not in GRANULARITIES or n < 1:
                raise ValueError(f"bad retention {g}={n}")
            kept[g] = int(n)
    return kept


def select_starts(
    starts: list[int],
    since: float | None,
    limit: int,
    keep: Callable[[int], bool] | None = None,
) -> list[int]:
    """The window starts a query returns, oldest first.

    Without ``since``: the ``limit`` most recent of ``starts`` (sorted) that ``keep`` accepts.
    With ``since``: up to ``limit`` of them at or after it.

    >>> select_starts([0, 60, 120, 180], None, 2)
    [120, 180]
    >>> select_starts([0, 60, 120, 180], 60, 2, keep=lambda s: s != 120)
    [60, 180]
    """
    if since is not None:
        starts = [s for s in starts if s >= since]
    if keep is not None:
        starts = [s for s in starts if keep(s)]
    if since is not None:
        return starts[: max(limit, 0)]
    return starts[-limit:] if limit > 0 else []


def window_view(granularity: str, start: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One window of a query answer.

    >>> window_view("minute", 60, [])["end"]
    '1970-01-01T00:02:00Z'
    """
    return {
        "granularity": granularity,
        "start": iso_utc(start),
        "end": iso_utc(start + GRANULARITIES[granularity]),
        "start_ts": start,
        "rows": rows,
    }


def drop_unrepresentable(
    windows: Mapping[str, dict[int, _Window]],
    watermark: dict[str, int | None],
    max_ts: float | None,
) -> tuple[int, float | None]:
    """Forget (in place) windows outside years 1-9999 UTC and the watermarks they moved.

    Returns how many windows went and the newest event time to keep (``max_ts``, or the end of
    the newest window left when ``max_ts`` itself was out of range).

    >>> wins = {"minute": {0: "w", 10**13: "far"}, "hour": {}, "day": {}}
    >>> wm = {"minute": 10**13, "hour": None, "day": None}
    >>> drop_unrepresentable(wins, wm, 1e13), wins["minute"], wm["minute"]
    ((1, 59.0), {0: 'w'}, 0)
    """
    dropped = 0
    for g, wins in windows.items():
        for start in [s for s in wins if not windowable(s)]:
            del wins[start]
            dropped += 1
        wm = watermark[g]
        if wm is not None and not windowable(wm):
            watermark[g] = max(wins) if wins else None
    if max_ts is not None and not windowable(max_ts):
        newest = [max(w) + GRANULARITIES[g] - 1 for g, w in windows.items() if w]
        max_ts = float(max(newest)) if newest else None
    return dropped, max_ts
