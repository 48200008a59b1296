"""Streaming spend analytics over ``agent.cost.v1`` (pure domain code, no I/O).

:class:`SpendAnalytics` is fed one :class:`~finops.common.events.LlmCallEvent` at a time and
keeps, for the fleet and per key of every dimension in :data:`DIMENSIONS`
(``agent``, ``team``, ``task_type``, ``provider``, ``model``), the numbers of an
:class:`~.aggregates.Aggregate`:

* calls, input / output / cached-input / reasoning tokens, spend (USD), successes,
  unpriced calls (``cost_usd is None``, counted with 0 USD) and their successes, mean quality;
* derived at query time: ``success_rate = successes / calls``,
  ``cost_per_success = spend_usd / priced_successes``, the successes of the calls that have a
  cost (failed calls' spend included: it is what a success really costs; an unpriced call's
  cost is unknown), latency p50 / p95 from a :class:`~.latency_sketch.LatencySketch`.

Numbers are kept for all time (``totals``) and in tumbling windows by **event time**
(``minute``, ``hour``, ``day``; window start = floor of the event time in UTC). Each granularity
keeps a bounded number of recent windows (default 120 minutes, 72 hours, 60 days) counted back
from the newest window seen (the *watermark*); an event older than that still counts in the
totals but in no window (counted in ``late_for_windows``). So does an event whose windows would
not start and end within years 1-9999 UTC (see :mod:`.eventtime`; counted in
``out_of_range_for_windows``): the schema accepts 9999-12-31T23:00-05:00, and one such event
must neither break the window queries nor move the watermark past every real window. A restored
state that holds such windows (checkpointed by an earlier version) drops them with a warning.

An event id seen twice is counted once: ids are remembered in an
:class:`~finops.common.id_dedupe.IdDedupe` (see :mod:`finops.common.id_dedupe` for its horizon),
which is part of :meth:`SpendAnalytics.to_state`. An id seen again is counted apart by why,
when the caller says where the record was read (``source``: a position in the log the agents'
events were written to, e.g. ``("agent.cost.v1:2", 1234)``): ``redelivered`` when that record
was taken already (the same event at the same position: forwarded twice by partitioned
learning's forwarders, whose at-least-once delivery re-sends after a restart or a rebalance
what they had not committed), ``duplicates`` otherwise (a record of its own: an agent sent the
event again; also in a log replaced since, e.g. a new broker or a topic recreated, whose
offsets start again at 0, from its first record on). See :mod:`.records_taken` for how many
records are remembered. A record without a source counts in ``duplicates``.

Cost: ``observe`` updates 20 aggregates (5 dimensions x (totals + 3 window sizes)) with plain
attribute arithmetic; the fleet row is the merge of the provider rows, computed at query time.
The aggregates of the newest windows are cached per key combination, so the common case is one
dict lookup plus the arithmetic: about 10-15 us per event on the reference machine (2 vCPUs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.optimizer.domain.aggregates import (
    DIMENSIONS,
    FLEET,
    FLEET_KEY,
    METRICS,
    NONE_KEY,
    OTHER_KEY,
    Aggregate,
    Bucket,
    Dimension,
    KeyedDimension,
    Metric,
    bucket_aggregates,
    dimension_aggregates,
    key_rows,
    new_bucket,
    pack_bucket,
    pack_unpriced,
    sort_rows,
    unpack_bucket,
    unpack_unpriced,
)
from finops.optimizer.domain.analytics_merge import merge_into, shared_retention
from finops.optimizer.domain.eventtime import epoch_seconds, iso_utc, windowable
from finops.optimizer.domain.latency_sketch import LatencySketch, latency_index
from finops.optimizer.domain.records_taken import RecordsTaken
from finops.optimizer.domain.windows import (
    GRANULARITIES,
    drop_unrepresentable,
    retention,
    select_starts,
    window_view,
)

# the names callers import from this module (re-exported from the modules they live in)
__all__ = [
    "DIMENSIONS",
    "FLEET",
    "FLEET_KEY",
    "GRANULARITIES",
    "METRICS",
    "NONE_KEY",
    "OTHER_KEY",
    "Dimension",
    "IdDedupe",
    "KeyedDimension",
    "LatencySketch",
    "Metric",
    "SpendAnalytics",
    "fingerprint",
]

STATE_VERSION = 1

log = logging.getLogger(__name__)


class SpendAnalytics:
    """Exactly-once spend aggregates per dimension, all-time and in tumbling windows.

    Parameters
    ----------
    retain
        Windows kept per granularity (default ``{"minute": 120, "hour": 72, "day": 60}``).
    dedupe_capacity
        Size of the event-id memory (see :class:`IdDedupe`).

    Examples
    --------
    >>> import uuid
    >>> from datetime import datetime, timezone
    >>> from finops.common.events import LlmCallEvent
    >>> def call(agent, cost, ms, eid=None):
    ...     return LlmCallEvent.model_validate({
    ...         "id": str(eid or uuid.uuid4()), "type": "agent.llm_call", "source": agent,
    ...         "time": "2025-01-01T10:00:30Z",
    ...         "data": {"agent_id": agent, "task_type": "qa", "provider": "openai",
    ...                  "model": "gpt-4o-mini", "usage": {"input_tokens": 100,
    ...                  "output_tokens": 10}, "cost_usd": cost, "latency_ms": ms,
    ...                  "success": True}})
    >>> sa = SpendAnalytics()
    >>> e = call("bot", 0.002, 400.0)
    >>> sa.observe(e), sa.observe(e)
    (True, False)
    >>> sa.observe(call("bot", 0.004, 600.0))
    True
    >>> row = sa.totals("agent")[0]
    >>> row["key"], row["calls"], round(row["spend_usd"], 6), row["input_tokens"]
    ('bot', 2, 0.006, 200)
    >>> sa.window("agent", "minute")[0]["start"]
    '2025-01-01T10:00:00Z'
    >>> SpendAnalytics.from_state(sa.to_state()).totals("agent") == sa.totals("agent")
    True
    """

    def __init__(
        self,
        retain: Mapping[str, int] | None = None,
        dedupe_capacity: int = 1_000_000,
    ) -> None:
        self.retain: dict[str, int] = retention(retain)
        self._dedupe = IdDedupe(dedupe_capacity)
        self._totals: Bucket = new_bucket()
        self._windows: dict[str, dict[int, Bucket]] = {g: {} for g in GRANULARITIES}
        self._watermark: dict[str, int | None] = {g: None for g in GRANULARITIES}
        self._late: dict[str, int] = {g: 0 for g in GRANULARITIES}
        self._out_of_range = 0
        self.events = 0
        #: ids counted already, in records of their own (an agent sent the event again)
        self.duplicates = 0
        #: ids counted already, in a record read again (see the module docstring)
        self.redelivered = 0
        #: the records taken, by source partition (``"topic:partition"``) and offset
        self.records_taken = RecordsTaken()
        self._max_ts: float | None = None
        # keys -> aggregates of the newest (minute, hour, day) windows, see _record
        self._cache_starts: tuple[int | None, ...] | None = None
        self._cache: dict[tuple[str, ...], list[Aggregate]] = {}
        # (size, retain, windows dict, granularity) per granularity, for the hot path
        self._grans = [
            (GRANULARITIES[g], self.retain[g], self._windows[g], g) for g in GRANULARITIES
        ]

    # ------------------------------------------------------------------ ingestion
    def observe(self, event: Any, source: tuple[str, int] | None = None) -> bool:
        """Count one ``LlmCallEvent``; False (nothing counted) when its id was already seen.

        ``source`` is where the record was read (``("topic:partition", offset)`` of the log
        the agents' events were written to): an id seen again in a record taken already (the
        same id at that position) is ``redelivered``, in any other a ``duplicate``."""
        fp = fingerprint(event.id)
        new = self._dedupe.add(fp)
        if self.read_again(source, fp, new):
            self.redelivered += 1
            return False
        if not new:
            self.duplicates += 1
            return False
        d = event.data
        u = d.usage
        self._record(
            event.time.timestamp(),
            (d.agent_id, d.team or NONE_KEY, d.task_type, d.provider, d.model),
            d.cost_usd,
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.reasoning_tokens,
            d.success,
            d.quality,
            d.latency_ms,
        )
        return True

    def read_again(self, source: tuple[str, int] | None, fp: int, new: bool) -> bool:
        """Note where a record was read (``source``, None: unknown), the fingerprint of its
        event id (``fp``) and whether that id was ``new``; True when it is a record read again:
        the same event taken already at the same position (:class:`.RecordsTaken`)."""
        if source is None:
            return False
        return self.records_taken.read_again(source[0], source[1], fp, new=new)

    def forget_positions(self, partitions: Iterable[str]) -> None:
        """Drop the records taken from these source partitions (``"topic:partition"``): their
        log is read again from its earliest offset as another log (see
        :mod:`finops.common.log_position`), so none of its records is one read again."""
        self.records_taken.forget(partitions)

    def observe_many(self, events: Iterable[Any]) -> int:
        """Count events; returns how many were new."""
        n = 0
        for e in events:
            n += self.observe(e)
        return n

    def seen(self, event_id: Any) -> bool:
        """Whether an event id (UUID) is in the dedupe memory."""
        return fingerprint(event_id) in self._dedupe

    def _record(
        self,
        ts: float,
        keys: tuple[str, ...],
        cost: float | None,
        inp: int,
        out: int,
        cached: int,
        reasoning: int,
        success: bool,
        quality: float | None,
        latency_ms: float,
    ) -> None:
        self.events += 1
        idx = latency_index(latency_ms)
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
            self._out_of_range += 1
            return bucket_aggregates(self._totals, keys)
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
        its = int(ts // 1)
        starts = (its - its % 60, its - its % 3600, its - its % 86400)
        if starts == self._cache_starts:
            # every event of the newest minute with the same keys hits the same 20 aggregates
            hit = self._cache.get(keys)
            if hit is None:
                hit = self._cache[keys] = self._collect(keys, starts)
            return hit
        aggs = self._collect(keys, starts)
        if starts == (
            self._watermark["minute"],
            self._watermark["hour"],
            self._watermark["day"],
        ):
            self._cache_starts = starts
            self._cache = {keys: aggs}
        return aggs

    def _collect(self, keys: tuple[str, ...], starts: tuple[int, int, int]) -> list[Aggregate]:
        """The aggregates an event with these keys and window starts updates (creating
        windows and aggregates, advancing watermarks; late windows are skipped)."""
        buckets = [self._totals]
        for (size, retain, wins, g), start in zip(self._grans, starts, strict=True):
            b = wins.get(start)
            if b is None:
                wm = self._watermark[g]
                if wm is None or start > wm:
                    self._advance(g, start)
                elif start <= wm - retain * size:
                    self._late[g] += 1
                    continue
                b = wins[start] = new_bucket()
            buckets.append(b)
        aggs = []
        for b in buckets:
            aggs += bucket_aggregates(b, keys)
        return aggs

    def _advance(self, g: str, start: int) -> None:
        self._watermark[g] = start
        self._cache_starts = None  # windows may be evicted: the cached aggregates go stale
        self._cache = {}
        horizon = start - self.retain[g] * GRANULARITIES[g]
        wins = self._windows[g]
        for s in [s for s in wins if s <= horizon]:
            del wins[s]

    # ------------------------------------------------------------------ queries
    def keys(self, dimension: str) -> list[str]:
        """All keys of a dimension seen since the start (sorted)."""
        return sorted(dimension_aggregates(self._totals, dimension))

    def totals(
        self, dimension: str = FLEET, key: str | None = None, by: str = "spend_usd"
    ) -> list[dict[str, Any]]:
        """All-time rows of a dimension (``fleet`` gives one row), sorted by ``by``."""
        return key_rows(dimension_aggregates(self._totals, dimension), by, key)

    def window(
        self,
        dimension: str,
        granularity: str,
        start: datetime | float | str | None = None,
        limit: int = 60,
        key: str | None = None,
        by: str = "spend_usd",
    ) -> list[dict[str, Any]]:
        """Retained windows, oldest first.

        Without ``start``: the ``limit`` most recent windows. With ``start``: up to ``limit``
        windows whose start is at or after it. Each window is ``{"granularity", "start",
        "end", "start_ts", "rows": [...]}``; ``key`` keeps one key's row only (windows where it
        had no call are left out).
        """
        if granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {granularity!r}; one of minute, hour, day")
        dimension_aggregates(self._totals, dimension)  # validates the dimension
        wins = self._windows[granularity]
        starts = select_starts(
            sorted(wins),
            None if start is None else epoch_seconds(start),
            limit,
            None if key is None else lambda s: key in dimension_aggregates(wins[s], dimension),
        )
        return [
            window_view(granularity, s, key_rows(dimension_aggregates(wins[s], dimension), by, key))
            for s in starts
        ]

    def top(
        self,
        dimension: str,
        by: str = "spend_usd",
        n: int = 10,
        granularity: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``n`` keys with the highest ``by`` (all time, or in the newest window)."""
        if granularity is None:
            rows = self.totals(dimension, by=by)
        else:
            wins = self.window(dimension, granularity, limit=1, by=by)
            rows = wins[0]["rows"] if wins else []
        return sort_rows(rows, by)[: max(n, 0)]

    def top_k_with_other(
        self, dimension: str, k: int = 10, by: str = "spend_usd"
    ) -> list[dict[str, Any]]:
        """All-time rows of the top ``k`` keys plus one :data:`OTHER_KEY` row summing the rest.

        At most ``k + 1`` rows whatever the number of keys: the bounded label set for the
        Prometheus gauges. The ``__other__`` row is present only when some key is left out,
        or when a key is itself named ``__other__`` (an agent may name its task type so): that
        key is counted in the ``__other__`` row, never listed apart, so that no two rows (two
        series of one label set on /metrics) share the name.
        """
        d = dimension_aggregates(self._totals, dimension)
        rows = [row for row in key_rows(d, by) if row["key"] != OTHER_KEY]
        top, rest = rows[:k], rows[k:]
        if rest or OTHER_KEY in d:
            other = Aggregate()
            for key in [r["key"] for r in rest] + ([OTHER_KEY] if OTHER_KEY in d else []):
                other.merge(d[key])
            top.append(other.row(OTHER_KEY))
        return top

    def bounded_totals(self, k: int = 10, by: str = "spend_usd") -> dict[str, list[dict[str, Any]]]:
        """:meth:`top_k_with_other` for the fleet and every dimension."""
        out = {FLEET: self.totals(FLEET)}
        for dim in DIMENSIONS:
            out[dim] = self.top_k_with_other(dim, k, by)
        return out

    def summary(self) -> dict[str, Any]:
        """Fleet totals, key counts, window counts, watermark and dedupe figures."""
        fleet = dimension_aggregates(self._totals, FLEET).get(FLEET_KEY)
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "redelivered": self.redelivered,
            "fleet": (fleet or Aggregate()).row(FLEET_KEY),
            "keys": {dim: len(dimension_aggregates(self._totals, dim)) for dim in DIMENSIONS},
            "windows": {g: len(w) for g, w in self._windows.items()},
            "late_for_windows": dict(self._late),
            "out_of_range_for_windows": self._out_of_range,
            "watermark": None if self._max_ts is None else iso_utc(self._max_ts),
            "dedupe": {
                "remembered": len(self._dedupe),
                "capacity": self._dedupe.capacity,
                "horizon": self._dedupe.horizon,
            },
        }

    @classmethod
    def merged(cls, parts: Iterable[SpendAnalytics]) -> SpendAnalytics:
        """Read-only analytics of the union of parts that saw disjoint events (e.g. one per
        ``task_type`` partition), with an empty dedupe; see :mod:`.analytics_merge`."""
        parts = list(parts)
        merged = cls(retain=shared_retention(p.retain for p in parts))
        merge_into(merged, parts)
        return merged

    # ------------------------------------------------------------------ state
    def to_state(
        self, *, remember_ids: bool = True, resume_at: Mapping[str, int] | None = None
    ) -> dict[str, Any]:
        """JSON-serialisable snapshot (aggregates, sketches, windows, the dedupe memory and the
        records taken; without ``remember_ids``, neither memory: a read-only view for
        answering queries). ``resume_at``: the offsets the one worker's intake resumes from,
        before which no record taken is kept (:meth:`.RecordsTaken.to_state`)."""
        return {
            "version": STATE_VERSION,
            "retain": dict(self.retain),
            "events": self.events,
            "duplicates": self.duplicates,
            # both absent before redeliveries were counted apart (a version before skips them)
            "redelivered": self.redelivered,
            "records_taken": (self.records_taken if remember_ids else RecordsTaken()).to_state(
                resume_at
            ),
            "max_ts": self._max_ts,
            "watermark": dict(self._watermark),
            "late": dict(self._late),
            "out_of_range": self._out_of_range,
            "totals": pack_bucket(self._totals),
            "windows": {
                g: [[s, pack_bucket(b)] for s, b in sorted(w.items())]
                for g, w in self._windows.items()
            },
            "dedupe": (
                self._dedupe if remember_ids else IdDedupe(self._dedupe.capacity)
            ).to_state(),
            # beside the packed aggregates, not in them: a version before it unpacks exactly
            # eleven items per aggregate, and skips a key it does not know
            "unpriced_successes": {
                "totals": pack_unpriced(self._totals),
                "windows": {
                    g: [[s, pack_unpriced(b)] for s, b in sorted(w.items())]
                    for g, w in self._windows.items()
                },
            },
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SpendAnalytics:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported analytics state version {state.get('version')!r}")
        sa = cls(retain=state["retain"], dedupe_capacity=state["dedupe"]["capacity"])
        sa.events = state["events"]
        sa.duplicates = state["duplicates"]
        # a state written before redeliveries were counted apart has them among duplicates
        sa.redelivered = state.get("redelivered", 0)
        # a state of commit 2c67f41 to e87b306 kept the newest offset taken per partition
        # ("positions") instead, which cannot tell a replaced log's records: not used
        sa.records_taken = RecordsTaken.from_state(state.get("records_taken"))
        sa._max_ts = state["max_ts"]
        sa._watermark.update(state["watermark"])
        sa._late.update(state["late"])
        sa._out_of_range = state.get("out_of_range", 0)
        sa._totals = unpack_bucket(state["totals"])
        for g, wins in state["windows"].items():
            target = sa._windows[g]  # same dict object the hot path holds
            for s, b in wins:
                target[int(s)] = unpack_bucket(b)
        sa._restore_unpriced_successes(state.get("unpriced_successes"))
        sa._dedupe = IdDedupe.from_state(state["dedupe"])
        sa._drop_unrepresentable_windows()
        return sa

    def _restore_unpriced_successes(self, packed: Mapping[str, Any] | None) -> None:
        """The successes among the unpriced calls, from :meth:`to_state`'s part; without it (a
        state written by a version before it) every restored unpriced call's outcome is
        unknown (:attr:`~.aggregates.Aggregate.unsplit`): its success, if it was one, stays
        among the priced successes, as that version counted it; except in a state of commit
        dc7d1d8 (reverted), whose aggregates packed them as a twelfth item
        (:meth:`~.aggregates.Aggregate.unpack`)."""
        if packed is None:
            return
        unpack_unpriced(self._totals, packed["totals"])
        for g, wins in self._windows.items():
            parts = {int(s): b for s, b in packed["windows"].get(g, [])}
            for s, bucket in wins.items():
                unpack_unpriced(bucket, parts.get(s, [{} for _ in bucket]))

    def _drop_unrepresentable_windows(self) -> None:
        """Forget windows outside years 1-9999 UTC, which an earlier version could
        checkpoint, and the watermarks they moved; the totals keep their events."""
        dropped, self._max_ts = drop_unrepresentable(self._windows, self._watermark, self._max_ts)
        if dropped:
            log.warning(
                "dropped %d windows outside the representable time range (years 1-9999 UTC) "
                "from the restored analytics state; the all-time totals keep their events",
                dropped,
                extra={"dropped_windows": dropped},
            )
