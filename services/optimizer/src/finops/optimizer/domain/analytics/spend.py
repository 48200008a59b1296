"""Exactly-once streaming spend analytics over ``agent.cost.v1`` (pure domain code, no I/O).

:class:`SpendAnalytics` is fed one :class:`~finops.common.events.LlmCallEvent` at a time,
counts each event once in its :class:`~.counts.SpendCounts` (all-time totals and tumbling
event-time windows, per key of every dimension in :data:`~..aggregates.DIMENSIONS`; see
:mod:`.counts` for what is counted and what a late or out-of-range event is), and answers the
queries of ``/api/stats`` and the Prometheus gauges from them.

An event id seen twice is counted once: ids are remembered in an
:class:`~finops.common.id_dedupe.IdDedupe` (see :mod:`finops.common.id_dedupe` for its horizon),
which is part of :meth:`SpendAnalytics.to_state`. An id seen again is counted apart by why,
when the caller says where the record was read (``source``: a position in the log the agents'
events were written to, e.g. ``("agent.cost.v1:2", 1234)``): ``redelivered`` when that record
was taken already (the same event at the same position: forwarded twice by partitioned
learning's forwarders, whose at-least-once delivery re-sends after a restart or a rebalance
what they had not committed), ``duplicates`` otherwise (a record of its own: an agent sent the
event again; also in a log replaced since, e.g. a new broker or a topic recreated, whose
offsets start again at 0, from its first record on). See :mod:`..records_taken` for how many
records are remembered. A record without a source counts in ``duplicates``.

The checkpoint format is :mod:`.state`'s, the merge of disjoint parts :mod:`.merge`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.optimizer.domain.aggregates import (
    DIMENSIONS,
    FLEET,
    FLEET_KEY,
    OTHER_KEY,
    Aggregate,
    dimension_aggregates,
    key_rows,
    sort_rows,
)
from finops.optimizer.domain.analytics.counts import SpendCounts
from finops.optimizer.domain.analytics.merge import merge_into, shared_retention
from finops.optimizer.domain.analytics.state import STATE_VERSION, restore_into, to_state
from finops.optimizer.domain.eventtime import epoch_seconds, iso_utc
from finops.optimizer.domain.records_taken import RecordsTaken
from finops.optimizer.domain.windows import (
    GRANULARITIES,
    retention,
    select_starts,
    window_view,
)

__all__ = ["SpendAnalytics"]


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
        #: the ids of the events counted (see the module docstring)
        self.dedupe = IdDedupe(dedupe_capacity)
        #: the totals and windows of the events counted
        self.counts = SpendCounts(self.retain)
        self.events = 0
        #: ids counted already, in records of their own (an agent sent the event again)
        self.duplicates = 0
        #: ids counted already, in a record read again (see the module docstring)
        self.redelivered = 0
        #: the records taken, by source partition (``"topic:partition"``) and offset
        self.records_taken = RecordsTaken()

    # ------------------------------------------------------------------ ingestion
    def observe(self, event: Any, source: tuple[str, int] | None = None) -> bool:
        """Count one ``LlmCallEvent``; False (nothing counted) when its id was already seen.

        ``source`` is where the record was read (``("topic:partition", offset)`` of the log
        the agents' events were written to): an id seen again in a record taken already (the
        same id at that position) is ``redelivered``, in any other a ``duplicate``."""
        fp = fingerprint(event.id)
        new = self.dedupe.add(fp)
        if self.read_again(source, fp, new):
            self.redelivered += 1
            return False
        if not new:
            self.duplicates += 1
            return False
        ts = event.time.timestamp()
        self.events += 1
        self.counts.record(ts, event.data)
        return True

    def read_again(self, source: tuple[str, int] | None, fp: int, new: bool) -> bool:
        """Note where a record was read (``source``, None: unknown), the fingerprint of its
        event id (``fp``) and whether that id was ``new``; True when it is a record read again:
        the same event taken already at the same position
        (:class:`..records_taken.RecordsTaken`)."""
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
        return fingerprint(event_id) in self.dedupe

    # ------------------------------------------------------------------ queries
    def keys(self, dimension: str) -> list[str]:
        """All keys of a dimension seen since the start (sorted)."""
        return sorted(dimension_aggregates(self.counts.totals, dimension))

    def totals(
        self, dimension: str = FLEET, key: str | None = None, by: str = "spend_usd"
    ) -> list[dict[str, Any]]:
        """All-time rows of a dimension (``fleet`` gives one row), sorted by ``by``."""
        return key_rows(dimension_aggregates(self.counts.totals, dimension), by, key)

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
        dimension_aggregates(self.counts.totals, dimension)  # validates the dimension
        wins = self.counts.series[granularity].windows
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
        d = dimension_aggregates(self.counts.totals, dimension)
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
        fleet = dimension_aggregates(self.counts.totals, FLEET).get(FLEET_KEY)
        max_ts = self.counts.max_ts
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "redelivered": self.redelivered,
            "fleet": (fleet or Aggregate()).row(FLEET_KEY),
            "keys": {dim: len(dimension_aggregates(self.counts.totals, dim)) for dim in DIMENSIONS},
            "windows": {g: len(s.windows) for g, s in self.counts.series.items()},
            "late_for_windows": {g: s.late for g, s in self.counts.series.items()},
            "out_of_range_for_windows": self.counts.out_of_range,
            "watermark": None if max_ts is None else iso_utc(max_ts),
            "dedupe": {
                "remembered": len(self.dedupe),
                "capacity": self.dedupe.capacity,
                "horizon": self.dedupe.horizon,
            },
        }

    @classmethod
    def merged(cls, parts: Iterable[SpendAnalytics]) -> SpendAnalytics:
        """Read-only analytics of the union of parts that saw disjoint events (e.g. one per
        ``task_type`` partition), with an empty dedupe; see :mod:`.merge`."""
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
        before which no record taken is kept (:meth:`..records_taken.RecordsTaken.to_state`).
        The format is :mod:`.state`'s."""
        return to_state(self, remember_ids=remember_ids, resume_at=resume_at)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SpendAnalytics:
        """The analytics a :meth:`to_state` snapshot holds (of this version or an earlier
        one, see :mod:`.state`); ``ValueError`` for another state version."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported analytics state version {state.get('version')!r}")
        sa = cls(retain=state["retain"], dedupe_capacity=state["dedupe"]["capacity"])
        restore_into(sa, state)
        return sa
