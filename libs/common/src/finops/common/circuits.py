"""Circuit-breaker state as it travels on the compacted topic ``finops.circuits.v1``.

The healer instance that owns a provider/model's breaker publishes its state, keyed by
provider/model; every healer and optimizer instance reads the whole topic into a
:class:`CircuitTable` (the latest state per breaker) with a :class:`CircuitReader`, so any
instance answers for any breaker (the KTable / GlobalKTable split of design.md). The table
is keyed by the (provider, model) inside the value, never by the Kafka key alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter

from finops.common.catch_up import CatchUp
from finops.common.kafka import topic_partitions

log = logging.getLogger(__name__)

#: the records of the breakers' topic no reader of this process could read: no dead-letter
#: topic holds them (the topic is compacted and read whole at every start), so this is where
#: an operator sees one
UNREADABLE = Counter(
    "finops_circuit_states_unreadable_total",
    "Records of finops.circuits.v1 this process's breaker table could not read (not a breaker"
    " state: logged and skipped; counted again at each start, as the topic is read whole)",
)


class CircuitStatus(StrEnum):
    """Where a breaker is: calls flow (closed), are stopped (open) or probe (half_open)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def circuit_key(provider: str, model: str) -> str:
    """The Kafka key of a breaker: ``provider/model`` (a ``/`` in the provider is escaped,
    so two breakers never share a key and compaction never merges them)."""
    return f"{quote(provider, safe='')}/{model}"


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def _epoch(text: Any) -> float | None:
    return None if text is None else datetime.fromisoformat(str(text)).timestamp()


@dataclass(frozen=True)
class CircuitState:
    """One breaker's state as published: counts are over the sliding window.

    Times are epoch seconds here and ISO 8601 on the wire.

    Examples
    --------
    >>> s = CircuitState("openai", "gpt-4o", CircuitStatus.OPEN, 0.6, 20, 12, 60.0,
    ...                  opened_at=0.0, next_probe_at=30.0, reason="failure rate", updated_at=0.0)
    >>> CircuitState.from_json(s.to_json()) == s
    True
    >>> s.to_dict()["next_probe_at"]
    '1970-01-01T00:00:30+00:00'
    """

    provider: str
    model: str
    state: CircuitStatus
    failure_rate: float
    calls: int
    failures: int
    window_s: float
    opened_at: float | None
    next_probe_at: float | None
    reason: str
    updated_at: float

    @property
    def key(self) -> str:
        return circuit_key(self.provider, self.model)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        for name in ("opened_at", "next_probe_at", "updated_at"):
            out[name] = _iso(out[name])
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> CircuitState:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on a malformed record."""
        data = json.loads(raw)
        return cls(
            provider=str(data["provider"]),
            model=str(data["model"]),
            state=CircuitStatus(data["state"]),
            failure_rate=float(data["failure_rate"]),
            calls=int(data["calls"]),
            failures=int(data["failures"]),
            window_s=float(data["window_s"]),
            opened_at=_epoch(data.get("opened_at")),
            next_probe_at=_epoch(data.get("next_probe_at")),
            reason=str(data.get("reason", "")),
            updated_at=float(_epoch(data["updated_at"]) or 0.0),
        )


class CircuitTable:
    """The latest state of every breaker, as read from the topic.

    Examples
    --------
    >>> table = CircuitTable()
    >>> table.state_of("openai", "gpt-4o") is None
    True
    >>> table.apply(CircuitState("openai", "gpt-4o", CircuitStatus.OPEN, 1.0, 20, 20, 60.0,
    ...                          0.0, 30.0, "failure rate", updated_at=5.0))
    True
    >>> table.state_of("openai", "gpt-4o")
    'open'
    """

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], CircuitState] = {}
        self.records_read = 0

    def apply(self, state: CircuitState) -> bool:
        """Keep ``state`` unless a newer one of the same breaker is already here."""
        self.records_read += 1
        key = (state.provider, state.model)
        known = self.states.get(key)
        if known is not None and known.updated_at > state.updated_at:
            return False
        self.states[key] = state
        return True

    def get(self, provider: str, model: str) -> CircuitState | None:
        return self.states.get((provider, model))

    def state_of(self, provider: str, model: str) -> str | None:
        """``"closed"``, ``"open"``, ``"half_open"``, or None for a breaker never published."""
        known = self.states.get((provider, model))
        return None if known is None else known.state.value

    def all(self) -> list[CircuitState]:
        return [self.states[k] for k in sorted(self.states)]


class CircuitReader:
    """Reads every partition of the circuits topic from its earliest offset into a table.

    No consumer group: each instance reads the whole topic for itself (a compacted topic
    holds one record per breaker, plus whatever the broker has not compacted yet).
    """

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, table: CircuitTable) -> None:
        self.consumer = consumer
        self.topic = topic
        self.table = table
        self.unreadable = 0

    async def start(self) -> None:
        await self.consumer.start()
        partitions = await topic_partitions(self.consumer, self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        if tps:
            await self.consumer.seek_to_beginning(*tps)

    def take(self, raw: bytes | None) -> None:
        if raw is None:  # a tombstone: nothing to serve
            return
        try:
            self.table.apply(CircuitState.from_json(raw))
        except (ValueError, KeyError, TypeError) as exc:
            # Written by the healer alone; an unreadable record is logged, not served.
            self.unreadable += 1
            UNREADABLE.inc()
            log.error("unreadable circuit state", extra={"error": repr(exc)})

    async def read_to_now(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        """Wait until :meth:`run` has read every partition up to its end as of this call, so
        the table holds every state published before it; False when ``timeout_s`` passed
        first (the reader is not running, or the broker did not answer)."""
        try:
            async with asyncio.timeout(timeout_s):
                tps = sorted(self.consumer.assignment(), key=lambda tp: tp.partition)
                ends = await self.consumer.end_offsets(tps) if tps else {}
                catch_up = CatchUp({tp.partition: end for tp, end in ends.items()})
                while await catch_up.behind_now(self._position):
                    await asyncio.sleep(poll_s)  # the positions move as run() reads on
        except TimeoutError:
            return False
        return True

    async def _position(self, partition: int) -> int:
        return await self.consumer.position(TopicPartition(self.topic, partition))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batch.values():
                for record in records:
                    self.take(record.value)
            await asyncio.sleep(0)  # getmany() does not suspend while records are buffered

    async def stop(self) -> None:
        await self.consumer.stop()
