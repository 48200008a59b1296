"""Spend aggregates and the rows derived from them (pure domain code, no I/O).

An :class:`Aggregate` holds, for one key of one dimension, calls, input / output /
cached-input / reasoning tokens, spend (USD), successes, unpriced calls (``cost_usd is None``,
counted with 0 USD) and the successes among them, the quality sum and a latency histogram
(:mod:`.latency_sketch`). A
*bucket* (the all-time totals, or one time window) holds one ``{key: Aggregate}`` dict per
dimension of :data:`DIMENSIONS`; the fleet row is the merge of the provider rows (every call has
exactly one provider), which saves four aggregates per event. :meth:`Aggregate.row` derives
``success_rate``, ``cost_per_success`` and the latency p50 / p95 at query time.

``cost_per_success`` is the spend over the *priced* successes: an unpriced call's cost is
unknown, so its success is left out (counted, a model reported mostly unpriced read several
times cheaper per success than its priced calls cost). The successes among the unpriced calls
are not in the packed aggregate (:meth:`Aggregate.pack`, whose eleven items a version before
them unpacks and would refuse a twelfth): they travel beside it (:func:`pack_unpriced`), a
part of the state such a version skips. A state without that part (written by such a
version) leaves the outcome of its unpriced calls unknown: :attr:`Aggregate.unsplit` counts
them, and their successes stay in the figure as before (see :meth:`Aggregate.row`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from finops.optimizer.domain.latency_sketch import hist_quantile, pack_hist, unpack_hist

__all__ = [
    "DIMENSIONS",
    "FLEET",
    "FLEET_KEY",
    "METRICS",
    "NONE_KEY",
    "OTHER_KEY",
    "Aggregate",
    "Bucket",
    "Dimension",
    "KeyedDimension",
    "Metric",
    "bucket_aggregates",
    "dimension_aggregates",
    "key_rows",
    "new_bucket",
    "pack_bucket",
    "pack_unpriced",
    "sort_rows",
    "unpack_bucket",
    "unpack_unpriced",
]

#: the dimensions that have keys; the one list of them (the API's path values come from it)
KeyedDimension = Literal["agent", "team", "task_type", "provider", "model"]
DIMENSIONS: tuple[str, ...] = get_args(KeyedDimension)
FLEET = "fleet"
#: every dimension a total or window is read for: the fleet (one row) and the keyed ones
Dimension = Literal["fleet", KeyedDimension]
FLEET_KEY = "all"
#: key used when an optional dimension (``team``) is absent from the event
NONE_KEY = "(none)"
#: key of the bucket that sums every key outside the top-K
OTHER_KEY = "__other__"

#: numeric fields of a row (valid values of ``by``)
Metric = Literal[
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "spend_usd",
    "successes",
    "success_rate",
    "cost_per_success",
    "priced_successes",
    "latency_p50_ms",
    "latency_p95_ms",
    "unpriced_calls",
    "unpriced_outcome_unknown",
    "quality_mean",
]
METRICS: tuple[str, ...] = get_args(Metric)

_ALL_DIMS = (FLEET, *DIMENSIONS)
_DIM_INDEX = {d: i for i, d in enumerate(DIMENSIONS)}
_PROVIDER = _DIM_INDEX["provider"]


class Aggregate:
    """Counts of the calls of one key in one bucket; :meth:`row` derives the metrics.

    Examples
    --------
    >>> a = Aggregate()
    >>> a.calls, a.spend, a.successes = 2, 0.5, 1
    >>> a.hist = {0: 2}  # two calls of about 1 ms (bucket 0, see latency_sketch)
    >>> row = a.row("bot")
    >>> row["calls"], row["success_rate"], row["cost_per_success"], row["quality_mean"]
    (2, 0.5, 0.5, None)
    >>> Aggregate.unpack(a.pack()).row("bot") == row
    True
    >>> a.calls, a.unpriced, a.successes, a.unpriced_successes = 3, 1, 2, 1  # one unpriced success
    >>> row = a.row("bot")  # the priced calls' $0.50 over their one success
    >>> row["cost_per_success"], row["priced_successes"], row["unpriced_calls"]
    (0.5, 1, 1)
    """

    __slots__ = (
        "cached",
        "calls",
        "hist",
        "inp",
        "out",
        "qn",
        "qsum",
        "reasoning",
        "spend",
        "successes",
        "unpriced",
        "unpriced_successes",
        "unsplit",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.inp = 0
        self.out = 0
        self.cached = 0
        self.reasoning = 0
        self.spend = 0.0
        self.successes = 0
        self.unpriced = 0
        #: the successes among the unpriced calls (left out of the cost per success)
        self.unpriced_successes = 0
        #: unpriced calls restored from a state that did not say which of them succeeded
        #: (written by a version before :attr:`unpriced_successes`); their successes, if
        #: any, are counted as priced ones, as that version did
        self.unsplit = 0
        self.qsum = 0.0
        self.qn = 0
        self.hist: dict[int, int] = {}

    def merge(self, o: Aggregate) -> None:
        self.calls += o.calls
        self.inp += o.inp
        self.out += o.out
        self.cached += o.cached
        self.reasoning += o.reasoning
        self.spend += o.spend
        self.successes += o.successes
        self.unpriced += o.unpriced
        self.unpriced_successes += o.unpriced_successes
        self.unsplit += o.unsplit
        self.qsum += o.qsum
        self.qn += o.qn
        h = self.hist
        for idx, c in o.hist.items():
            h[idx] = h.get(idx, 0) + c

    def row(self, key: str) -> dict[str, Any]:
        """The row of this aggregate under ``key``.

        ``cost_per_success`` is the spend over ``priced_successes``, the successes of the
        calls that have a cost (failed calls' spend included: it is what a success costs);
        ``None`` without one. ``unpriced_outcome_unknown`` counts the unpriced calls restored
        from a state written before their successes were kept (:attr:`unsplit`): those
        successes are still among ``priced_successes``, so while it is not 0 the figure is
        the earlier, lower one for those calls.
        """
        calls = self.calls
        priced = self.successes - self.unpriced_successes
        return {
            "key": key,
            "calls": calls,
            "input_tokens": self.inp,
            "output_tokens": self.out,
            "cached_input_tokens": self.cached,
            "reasoning_tokens": self.reasoning,
            "spend_usd": self.spend,
            "successes": self.successes,
            "success_rate": self.successes / calls if calls else None,
            "cost_per_success": self.spend / priced if priced else None,
            "priced_successes": priced,
            "latency_p50_ms": hist_quantile(self.hist, calls, 0.5),
            "latency_p95_ms": hist_quantile(self.hist, calls, 0.95),
            "unpriced_calls": self.unpriced,
            "unpriced_outcome_unknown": self.unsplit,
            "quality_mean": self.qsum / self.qn if self.qn else None,
        }

    def pack(self) -> list[Any]:
        """The eleven items every version unpacks (the successes among the unpriced calls
        are packed apart: :func:`pack_unpriced`)."""
        return [
            self.calls,
            self.inp,
            self.out,
            self.cached,
            self.reasoning,
            self.spend,
            self.successes,
            self.unpriced,
            self.qsum,
            self.qn,
            pack_hist(self.hist),
        ]

    @classmethod
    def unpack(cls, p: list[Any]) -> Aggregate:
        """An aggregate from :meth:`pack`'s eleven items, its unpriced calls' outcome unknown
        (:attr:`unsplit`) until :func:`unpack_unpriced` sets it from the part beside; from
        twelve, as commit dc7d1d8 (reverted, an ancestor of 34d8d9c) packed them, the twelfth
        is :attr:`unpriced_successes`, and the outcome is known.

        >>> a = Aggregate()
        >>> a.calls, a.unpriced, a.successes = 3, 2, 2
        >>> (b := Aggregate.unpack(a.pack())).unsplit, b.unpriced_successes
        (2, 0)
        >>> (c := Aggregate.unpack([*a.pack(), 1])).unsplit, c.unpriced_successes
        (0, 1)
        """
        a = cls()
        (
            a.calls,
            a.inp,
            a.out,
            a.cached,
            a.reasoning,
            a.spend,
            a.successes,
            a.unpriced,
            a.qsum,
            a.qn,
            hist,
        ) = p[:11]
        a.hist = unpack_hist(hist)
        if len(p) > 11:
            a.unpriced_successes = int(p[11])
        else:
            a.unsplit = a.unpriced
        return a


#: one ``{key: Aggregate}`` dict per dimension of :data:`DIMENSIONS`, in that order
Bucket = list[dict[str, Aggregate]]


def new_bucket() -> Bucket:
    """An empty bucket."""
    return [{} for _ in DIMENSIONS]


def bucket_aggregates(bucket: Bucket, keys: tuple[str, ...]) -> list[Aggregate]:
    """The aggregates of one bucket that an event with these keys updates (created if new)."""
    aggs = []
    for dct, k in zip(bucket, keys, strict=True):
        a = dct.get(k)
        if a is None:
            a = dct[k] = Aggregate()
        aggs.append(a)
    return aggs


def dimension_aggregates(bucket: Bucket, dimension: str) -> dict[str, Aggregate]:
    """A bucket's ``{key: aggregate}`` of one dimension (``fleet``: one merged row)."""
    if dimension == FLEET:
        providers = bucket[_PROVIDER]
        if not providers:
            return {}
        fleet = Aggregate()
        for a in providers.values():
            fleet.merge(a)
        return {FLEET_KEY: fleet}
    try:
        return bucket[_DIM_INDEX[dimension]]
    except KeyError:
        raise ValueError(
            f"unknown dimension {dimension!r}; one of {', '.join(_ALL_DIMS)}"
        ) from None


def pack_bucket(b: Bucket) -> list[dict[str, list[Any]]]:
    """JSON-ready form of a bucket (keys sorted); :func:`unpack_bucket` reverses it."""
    return [{k: a.pack() for k, a in sorted(d.items())} for d in b]


def unpack_bucket(p: list[dict[str, list[Any]]]) -> Bucket:
    return [{k: Aggregate.unpack(v) for k, v in d.items()} for d in p]


def pack_unpriced(b: Bucket) -> list[dict[str, list[int]]]:
    """A bucket's ``[unpriced_successes, unsplit]`` per key, where either is not 0 (a part of
    the state a version before them skips); :func:`unpack_unpriced` sets them back.

    >>> b = new_bucket()
    >>> for a in bucket_aggregates(b, ("bot", "t", "qa", "openai", "m")):
    ...     a.calls, a.unpriced, a.unpriced_successes = 2, 1, 1
    >>> pack_unpriced(b)[4]
    {'m': [1, 0]}
    """
    return [
        {
            k: [a.unpriced_successes, a.unsplit]
            for k, a in sorted(d.items())
            if a.unpriced_successes or a.unsplit
        }
        for d in b
    ]


def unpack_unpriced(b: Bucket, p: list[dict[str, list[int]]] | None) -> None:
    """Set the successes among a bucket's unpriced calls from :func:`pack_unpriced`'s form
    (a key it leaves out has neither); ``None`` (a state written before they were kept beside
    the packed aggregates) leaves them as :meth:`Aggregate.unpack` found them: unknown
    (:attr:`Aggregate.unsplit`) from eleven items, the twelfth from twelve."""
    if p is None:
        return
    for d, packed in zip(b, p, strict=True):
        for k, agg in d.items():
            successes, unsplit = packed.get(k, (0, 0))
            agg.unpriced_successes, agg.unsplit = int(successes), int(unsplit)


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Rows sorted by the metric ``by``, highest first (``ValueError`` for an unknown one)."""
    if by not in METRICS:
        raise ValueError(f"unknown metric {by!r}; one of {', '.join(METRICS)}")
    # descending by value, None last, ties by key (deterministic)
    return sorted(rows, key=lambda r: (r[by] is None, -(r[by] or 0), r["key"]))


def key_rows(
    aggregates: Mapping[str, Aggregate], by: str, key: str | None = None
) -> list[dict[str, Any]]:
    """The rows of ``{key: aggregate}`` sorted by ``by``, or only ``key``'s row when given
    (none when it has no aggregate)."""
    if key is not None:
        return [aggregates[key].row(key)] if key in aggregates else []
    return sort_rows([a.row(k) for k, a in aggregates.items()], by)
