"""The spend counts: all-time totals and tumbling event-time windows (pure domain code, no I/O).

:class:`SpendCounts` adds one call to the numbers of an :class:`~..aggregates.Aggregate`, for
the fleet and per key of every dimension in :data:`~..aggregates.DIMENSIONS`:

* calls, input / output / cached-input / reasoning tokens, spend (USD), successes,
  unpriced calls (``cost_usd is None``, counted with 0 USD) and their successes, mean quality;
* derived at query time: ``success_rate = successes / calls``,
  ``cost_per_success = spend_usd / priced_successes``, the successes of the calls that have a
  cost (failed calls' spend included: it is what a success really costs; an unpriced call's
  cost is unknown), latency p50 / p95 from a :class:`~..latency_sketch.LatencySketch`.

Numbers are kept for all time (``totals``) and in tumbling windows by **event time**
(``minute``, ``hour``, ``day``; window start = floor of the event time in UTC), one
:class:`WindowSeries` per granularity. Each keeps a bounded number of recent windows (default
120 minutes, 72 hours, 60 days) counted back from the newest window seen (the *watermark*); an
event older than that still counts in the totals but in no window (counted in ``late``). So
does an event whose windows would not start and end within years 1-9999 UTC (see
:mod:`..eventtime`; counted in ``out_of_range``): the schema accepts 9999-12-31T23:00-05:00,
and one such event must neither break the window queries nor move the watermark past every
real window.

Cost: :meth:`SpendCounts.record` updates 20 aggregates (5 dimensions x (totals + 3 window
sizes)) with plain attribute arithmetic; the fleet row is the merge of the provider rows,
computed at query time. The aggregates of the newest windows are cached per key combination,
so the common case is one dict lookup plus the arithmetic: about 10-15 us per event on the
reference machine (2 vCPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from finops.optimizer.domain.aggregates import (
    NONE_KEY,
    Aggregate,
    Bucket,
    bucket_aggregates,
    new_bucket,
)
from finops.optimizer.domain.eventtime import windowable
from finops.optimizer.domain.latency_sketch import latency_index
from finops.optimizer.domain.windows import GRANULARITIES

__all__ = ["SpendCounts", "WindowSeries"]


@dataclass(slots=True)
class WindowSeries:
    """The retained windows of one granularity, their watermark and the events too late.

    Examples
    --------
    >>> minutes = WindowSeries("minute", size=60, retain=2)
    >>> minutes.advance(120)
    >>> minutes.windows = {0: new_bucket(), 60: new_bucket(), 120: new_bucket()}
    >>> minutes.advance(180)
    >>> minutes.watermark, sorted(minutes.windows), minutes.horizon()
    (180, [120], 60)
    """

    #: ``"minute"``, ``"hour"`` or ``"day"`` (a key of :data:`~..windows.GRANULARITIES`)
    granularity: str
    #: a window's length in seconds
    size: int
    #: how many windows are kept, counted back from the watermark's
    retain: int
    #: window start (epoch seconds) -> the aggregates of its events
    windows: dict[int, Bucket] = field(default_factory=dict)
    #: the start of the newest window seen (None before the first event)
    watermark: int | None = None
    #: the events older than the retained windows (counted in the totals only)
    late: int = 0

    def horizon(self) -> int | None:
        """The newest start no longer retained (None before the first event)."""
        return None if self.watermark is None else self.watermark - self.retain * self.size

    def advance(self, start: int) -> None:
        """Move the watermark to ``start`` and evict the windows it no longer retains."""
        self.watermark = start
        horizon = start - self.retain * self.size
        wins = self.windows
        for s in [s for s in wins if s <= horizon]:
            del wins[s]


class SpendCounts:
    """The all-time totals and the windows of every granularity (see the module docstring).

    Parameters
    ----------
    retain
        Windows kept per granularity, for every key of :data:`~..windows.GRANULARITIES`.

    Examples
    --------
    >>> from types import SimpleNamespace as Call
    >>> counts = SpendCounts({"minute": 2, "hour": 1, "day": 1})
    >>> usage = Call(input_tokens=100, output_tokens=10, cached_input_tokens=0,
    ...              reasoning_tokens=0)
    >>> call = Call(agent_id="bot", team=None, task_type="qa", provider="openai",
    ...             model="m", usage=usage, cost_usd=0.25, success=True, quality=None,
    ...             latency_ms=300.0)
    >>> for ts in (30.0, 90.0, 150.0, 20.0):  # the last is older than two minutes back
    ...     counts.record(ts, call)
    >>> counts.totals[0]["bot"].calls, sorted(counts.series["minute"].windows)
    (4, [60, 120])
    >>> counts.series["minute"].late, counts.max_ts
    (1, 150.0)
    """

    def __init__(self, retain: dict[str, int]) -> None:
        self.totals: Bucket = new_bucket()
        #: granularity -> its windows, in the order of :data:`~..windows.GRANULARITIES`
        self.series: dict[str, WindowSeries] = {
            g: WindowSeries(g, size, retain[g]) for g, size in GRANULARITIES.items()
        }
        #: the events whose windows are outside years 1-9999 UTC (counted in the totals only)
        self.out_of_range = 0
        #: the newest windowable event time seen (epoch seconds)
        self.max_ts: float | None = None
        # keys -> aggregates of the newest (minute, hour, day) windows, see _aggregates_for
        self._cache_starts: tuple[int | None, ...] | None = None
        self._cache: dict[tuple[str, ...], list[Aggregate]] = {}
        self._series = list(self.series.values())  # for the hot path

    def record(self, ts: float, call: Any) -> None:
        """Count one call (an event's ``data``, :class:`~finops.common.events.LlmCallData`)
        that happened at ``ts`` (epoch seconds)."""
        u = call.usage
        cost = call.cost_usd
        success = call.success
        quality = call.quality
        inp, out = u.input_tokens, u.output_tokens
        cached, reasoning = u.cached_input_tokens, u.reasoning_tokens
        idx = latency_index(call.latency_ms)
        keys = (call.agent_id, call.team or NONE_KEY, call.task_type, call.provider, call.model)
        for a in self._aggregates_for(ts, keys):
            a.calls += 1
            a.inp += inp
            a.out += out
            a.cached += cached
            a.reasoning += reasoning
            if cost is None:
                a.unpriced += 1
                a.unpriced_successes += success
            else:
                a.spend += cost
            if success:
                a.successes += 1
            if quality is not None:
                a.qsum += quality
                a.qn += 1
            h = a.hist
            h[idx] = h.get(idx, 0) + 1

    def _aggregates_for(self, ts: float, keys: tuple[str, ...]) -> list[Aggregate]:
        """The aggregates an event at ``ts`` with these keys updates: the totals' alone when
        its windows are out of range, else from the cache of the newest windows or
        :meth:`_collect`."""
        if not windowable(ts):
            self.out_of_range += 1
            return bucket_aggregates(self.totals, keys)
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        its = int(ts // 1)
        # one start per granularity, in the order of GRANULARITIES (minute, hour, day)
        starts = (its - its % 60, its - its % 3600, its - its % 86400)
        if starts == self._cache_starts:
            # every event of the newest minute with the same keys hits the same 20 aggregates
            hit = self._cache.get(keys)
            if hit is None:
                hit = self._cache[keys] = self._collect(keys, starts)
            return hit
        aggs = self._collect(keys, starts)
        if starts == tuple(s.watermark for s in self._series):
            self._cache_starts = starts
            self._cache = {keys: aggs}
        return aggs

    def _collect(self, keys: tuple[str, ...], starts: tuple[int, int, int]) -> list[Aggregate]:
        """The aggregates an event with these keys and window starts updates (creating
        windows and aggregates, advancing watermarks; late windows are skipped)."""
        buckets = [self.totals]
        for series, start in zip(self._series, starts, strict=True):
            b = series.windows.get(start)
            if b is None:
                wm = series.watermark
                if wm is None or start > wm:
                    series.advance(start)
                    self._cache_starts = None  # windows may be evicted: the cache goes stale
                    self._cache = {}
                elif start <= wm - series.retain * series.size:
                    series.late += 1
                    continue
                b = series.windows[start] = new_bucket()
            buckets.append(b)
        aggs = []
        for b in buckets:
            aggs += bucket_aggregates(b, keys)
        return aggs
