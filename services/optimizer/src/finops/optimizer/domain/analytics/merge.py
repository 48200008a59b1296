"""The spend analytics of a union of disjoint event streams (pure domain code, no I/O).

When the optimizer is split into partitions by ``task_type``, each partition's
:class:`~.spend.SpendAnalytics` sees a disjoint part of the events (every event of a task
type, and so every redelivery of an event, lands in one partition). :func:`merge_into` fills an
empty instance with what one instance would hold had it observed the union, exposed as
:meth:`SpendAnalytics.merged <.spend.SpendAnalytics.merged>`:

* the all-time totals and every window merged key by key (:meth:`..aggregates.Aggregate.merge`);
* ``events``, ``duplicates``, ``redelivered`` and ``out_of_range_for_windows`` summed, the
  watermarks and the newest event time the maximum of the parts';
* the windows the newer watermark no longer retains dropped, as observing would have: a window
  one instance keeps received every one of its events in every part (a part's watermark is never
  ahead of the union's), so the windows kept are exact.

Two figures are the parts' and not exactly one instance's:

* ``late_for_windows`` is the sum of the parts' counts. Whether an event is late depends on the
  order it arrived in relative to the *other* parts' events, which no part knows; the sum is a
  lower bound of one instance's count (an event late in its part is late in the union) and
  equal to it when no event arrived after its window's retention (e.g. events in time order).
* float sums (spend, quality) are added in another order, so they may differ from one
  instance's in the last bits.

Neither the dedupe memory nor the positions taken are merged: the result is a read-only view
for queries, with an empty dedupe (feeding it events would count again what the parts counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from finops.optimizer.domain.aggregates import Aggregate, Bucket, new_bucket

if TYPE_CHECKING:
    from finops.optimizer.domain.analytics.spend import SpendAnalytics

__all__ = ["merge_buckets", "merge_into", "newest", "retained_windows", "shared_retention"]

_Time = TypeVar("_Time", int, float)


def merge_buckets(buckets: Iterable[Bucket]) -> Bucket:
    """One bucket holding every key of ``buckets``, the aggregates of a key merged (new
    aggregates: the inputs are left as they were).

    >>> from finops.optimizer.domain.aggregates import bucket_aggregates
    >>> a, b = new_bucket(), new_bucket()
    >>> for bucket, agent in ((a, "bot"), (b, "bot"), (b, "crawler")):
    ...     for agg in bucket_aggregates(bucket, (agent, "t", "qa", "openai", "m")):
    ...         agg.calls += 1
    >>> merged = merge_buckets([a, b])
    >>> {key: agg.calls for key, agg in merged[0].items()}, a[0]["bot"].calls
    ({'bot': 2, 'crawler': 1}, 1)
    """
    out = new_bucket()
    for bucket in buckets:
        for target, source in zip(out, bucket, strict=True):
            for key, agg in source.items():
                into = target.get(key)
                if into is None:
                    into = target[key] = Aggregate()
                into.merge(agg)
    return out


def retained_windows(
    parts: Iterable[Mapping[int, Bucket]], watermark: int | None, retain: int, size: int
) -> dict[int, Bucket]:
    """The windows (start -> bucket) of every part merged start by start, less those a
    watermark ``watermark`` no longer retains (``retain`` windows of ``size`` seconds).

    >>> one, two = {0: new_bucket(), 60: new_bucket()}, {60: new_bucket(), 180: new_bucket()}
    >>> sorted(retained_windows([one, two], watermark=180, retain=3, size=60))
    [60, 180]
    """
    by_start: dict[int, list[Bucket]] = {}
    for windows in parts:
        for start, bucket in windows.items():
            by_start.setdefault(start, []).append(bucket)
    horizon = None if watermark is None else watermark - retain * size
    return {
        start: merge_buckets(buckets)
        for start, buckets in sorted(by_start.items())
        if horizon is None or start > horizon
    }


def newest(values: Iterable[_Time | None]) -> _Time | None:
    """The largest of the values that are not None (None when there is none).

    >>> newest([None, 3, 7, None]), newest([None])
    (7, None)
    """
    present = [v for v in values if v is not None]
    return max(present) if present else None


def shared_retention(retains: Iterable[Mapping[str, int]]) -> dict[str, int] | None:
    """The retention every part has (None for no part); ``ValueError`` when parts differ.

    >>> shared_retention([{"minute": 5}, {"minute": 5}])
    {'minute': 5}
    >>> shared_retention([{"minute": 5}, {"minute": 6}])
    Traceback (most recent call last):
    ...
    ValueError: cannot merge analytics with different window retention: ...
    """
    distinct: list[dict[str, int]] = []
    for retain in retains:
        if dict(retain) not in distinct:
            distinct.append(dict(retain))
    if len(distinct) > 1:
        raise ValueError(f"cannot merge analytics with different window retention: {distinct}")
    return distinct[0] if distinct else None


def merge_into(merged: SpendAnalytics, parts: Sequence[SpendAnalytics]) -> None:
    """Fill ``merged`` (empty, with the parts' retention) with the union of ``parts``.

    This module is the analytics' merge half: it sets the state :class:`SpendAnalytics` and
    its :class:`~.counts.SpendCounts` keep to themselves, and must change with them (see the
    module docstring for what is exact).

    Examples
    --------
    >>> from finops.common.events import LlmCallEvent, llm_call_event
    >>> from finops.optimizer.domain.analytics import SpendAnalytics
    >>> def call(task_type, cost, time):
    ...     return LlmCallEvent.model_validate(llm_call_event({
    ...         "agent_id": "bot", "task_type": task_type, "provider": "openai",
    ...         "model": "gpt-4o-mini", "usage": {"input_tokens": 100, "output_tokens": 10},
    ...         "cost_usd": cost, "latency_ms": 300.0, "success": True}, time=time))
    >>> qa, code = SpendAnalytics(), SpendAnalytics()  # one per task_type partition
    >>> qa.observe(call("qa", 0.25, "2025-01-01T10:00:30Z"))
    True
    >>> code.observe(call("code", 0.5, "2025-01-01T10:01:10Z"))
    True
    >>> fleet = SpendAnalytics.merged([qa, code])
    >>> row = fleet.totals("agent")[0]
    >>> row["key"], row["calls"], row["spend_usd"]
    ('bot', 2, 0.75)
    >>> [(w["start"][11:16], w["rows"][0]["calls"]) for w in fleet.window("agent", "minute")]
    [('10:00', 1), ('10:01', 1)]
    >>> fleet.summary()["watermark"], fleet.summary()["dedupe"]["remembered"]
    ('2025-01-01T10:01:10Z', 0)
    """
    merged.events = sum(p.events for p in parts)
    merged.duplicates = sum(p.duplicates for p in parts)
    merged.redelivered = sum(p.redelivered for p in parts)
    counts = merged.counts
    counts.out_of_range = sum(p.counts.out_of_range for p in parts)
    counts.max_ts = newest(p.counts.max_ts for p in parts)
    counts.totals = merge_buckets(p.counts.totals for p in parts)
    for g, series in counts.series.items():
        of_parts = [p.counts.series[g] for p in parts]
        series.watermark = newest(s.watermark for s in of_parts)
        series.late = sum(s.late for s in of_parts)
        series.windows = retained_windows(
            (s.windows for s in of_parts), series.watermark, series.retain, series.size
        )
