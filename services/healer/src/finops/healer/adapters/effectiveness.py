"""Outcomes of advice into the ledger (learned effectiveness + stats), checkpointed.

Every healer instance reads every partition of ``finops.healing.v1`` (the advice of all
instances), ``agent.cost.v1`` and ``agent.error.v1`` itself, so each one learns from the whole
fleet and answers the same stats. The ledger and the offsets it covers are saved together in
one PostgreSQL row (``healer_checkpoints``); at start-up the instance restores them and
resumes from those offsets, after :func:`finops.common.log_position.plan_resume` dropped any
the broker's log no longer holds (those partitions are read from the earliest offset, the
state kept). A restart therefore neither loses what was learned nor counts an outcome twice.

Records that do not decode are counted and logged, not parked again: the healer's validating
agent and the optimizer already put them on the dead-letter topics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter

from finops.common.datastores import is_dependency_failure
from finops.common.events import ErrorEvent, Event, LlmCallEvent, price_call
from finops.common.log_position import ResumePlan, partition_key
from finops.common.topics import AGENT_COST, AGENT_ERROR, HEALING, TopicSpec
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.healing_stats import AdviceRecord, HealingLedger, Outcome
from finops.healer.domain.payload import from_error_data
from finops.healer.domain.remedies import Action
from finops.healer.domain.taxonomy import ErrorKind

log = logging.getLogger(__name__)
OUTCOMES = Counter("finops_healer_outcome_records_total", "Records read", ["topic", "outcome"])
TOPICS: tuple[TopicSpec, ...] = (HEALING, AGENT_COST, AGENT_ERROR)
#: Records applied between two turns of the event loop (about 5 ms of classifying).
YIELD_EVERY = 100


@dataclass(frozen=True)
class SavedLedger:
    state: dict[str, Any]
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    cluster_id: str | None = None


class LedgerStore(Protocol):
    async def load(self, name: str) -> SavedLedger | None: ...

    async def save(self, name: str, saved: SavedLedger) -> None: ...


class PostgresLedgerStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def load(self, name: str) -> SavedLedger | None:
        row = await self.pool.fetchrow(
            "SELECT state, offsets, cluster_id FROM healer_checkpoints WHERE name = $1", name
        )
        if row is None:
            return None
        state = json.loads(await asyncio.to_thread(zlib.decompress, row["state"]))
        return SavedLedger(state, dict(json.loads(row["offsets"])), row["cluster_id"])

    async def save(self, name: str, saved: SavedLedger) -> None:
        # ``state`` is a fresh snapshot (new containers, immutable leaves): serialising it on a
        # thread cannot race the live ledger, and keeps a large state from stalling requests.
        blob = await asyncio.to_thread(_compressed_json, saved.state)
        await self.pool.execute(
            """
            INSERT INTO healer_checkpoints (name, state, offsets, cluster_id, saved_at)
            VALUES ($1, $2, $3::jsonb, $4, now())
            ON CONFLICT (name) DO UPDATE
              SET state = EXCLUDED.state, offsets = EXCLUDED.offsets,
                  cluster_id = EXCLUDED.cluster_id, saved_at = now()
            """,
            name,
            blob,
            json.dumps(saved.offsets),
            saved.cluster_id,
        )


def _compressed_json(state: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)


def advice_record(value: bytes) -> AdviceRecord:
    """A ``finops.healing.v1`` record as the ledger needs it (raises ValueError/KeyError)."""
    row = json.loads(value)
    return AdviceRecord(
        advice_id=str(row["advice_id"]),
        kind=ErrorKind(row["kind"]),
        provider=str(row["provider"]),
        model=str(row["model"]),
        action=Action(row["remedy"]["action"]),
        at_s=datetime.fromisoformat(row["time"]).timestamp(),
        follows=row.get("follows"),
    )


class OutcomeIntake:
    """Reads advice and outcomes into a :class:`HealingLedger` and checkpoints it."""

    def __init__(
        self,
        ledger: HealingLedger,
        consumer: AIOKafkaConsumer,
        store: LedgerStore,
        classifier: ErrorClassifier,
        *,
        name: str,
        checkpoint_interval_s: float = 5.0,
        topics: tuple[TopicSpec, ...] = TOPICS,
    ) -> None:
        self.ledger = ledger
        self.consumer = consumer
        self.store = store
        self.classifier = classifier
        self.name = name
        self.checkpoint_interval_s = checkpoint_interval_s
        self.topics = topics
        self.offsets: dict[str, int] = {}
        self.cluster_id: str | None = None
        self.records = 0
        self._dirty = False
        self._lock = asyncio.Lock()

    async def restore(self) -> bool:
        saved = await self.store.load(self.name)
        if saved is None:
            return False
        try:
            self.ledger = HealingLedger.from_state(saved.state)
        except (KeyError, ValueError, TypeError) as exc:
            log.error(
                "healer checkpoint unreadable; replaying the topics", extra={"error": repr(exc)}
            )
            return False
        self.offsets, self.cluster_id = dict(saved.offsets), saved.cluster_id
        return True

    def resume_from(self, plan: ResumePlan) -> None:
        self.offsets, self.cluster_id = dict(plan.offsets), plan.cluster_id

    async def assign(self) -> None:
        """Every partition of every topic, from the saved offset or the beginning."""
        partitions = [TopicPartition(t.name, p) for t in self.topics for p in range(t.partitions)]
        self.consumer.assign(partitions)
        fresh = [tp for tp in partitions if partition_key(tp) not in self.offsets]
        for tp in partitions:
            if partition_key(tp) in self.offsets:
                self.consumer.seek(tp, self.offsets[partition_key(tp)])
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)

    async def run(self, stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batch.items():
                for start in range(0, len(records), YIELD_EVERY):
                    # Each record and its offset change together (no await between them), so
                    # a checkpoint between two chunks is consistent; the API gets its turn.
                    async with self._lock:
                        for record in records[start : start + YIELD_EVERY]:
                            self.apply(record.topic, record.value)
                            self.offsets[partition_key(tp)] = record.offset + 1
                        self._dirty = True
                    await asyncio.sleep(0)
            if self._dirty and time.monotonic() - last >= self.checkpoint_interval_s:
                last = time.monotonic()
                await self._checkpoint_or_retry_later()
            await asyncio.sleep(0)
        await self.checkpoint()

    def apply(self, topic: str, value: bytes) -> None:
        try:
            if topic == HEALING.name:
                self.ledger.advised(advice_record(value))
            else:
                self._apply_event(Event.from_kafka(value))
        except (ValueError, KeyError, TypeError) as exc:
            OUTCOMES.labels(topic, "invalid").inc()
            log.warning("unreadable record skipped", extra={"topic": topic, "error": repr(exc)})
            return
        self.records += 1
        OUTCOMES.labels(topic, "applied").inc()

    def _apply_event(self, event: Event) -> None:
        at_s = event.time.timestamp()
        if isinstance(event, ErrorEvent):
            error, hint = from_error_data(event.data)
            kind = self.classifier.classify(error, hint).kind
            advice_id = event.data.remedy.advice_id if event.data.remedy else None
            self.ledger.failed(kind, advice_id, at_s)
        elif isinstance(event, LlmCallEvent) and event.data.remedy is not None:
            data, advice_id = event.data, event.data.remedy.advice_id
            cost = data.cost_usd or 0.0
            first = self.ledger.first_model(advice_id)
            baseline = cost
            if first is not None and first != (data.provider, data.model):
                priced = price_call(first[0], first[1], data.usage, event.time).total_usd
                baseline = float(priced) if priced is not None else cost
            self.ledger.healed(Outcome(advice_id, data.success, at_s, cost, baseline))

    async def _checkpoint_or_retry_later(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # PostgreSQL down: the next interval tries again
            if not is_dependency_failure(exc):
                raise
            log.warning("healer checkpoint failed; retrying later", extra={"error": repr(exc)})

    async def checkpoint(self) -> None:
        async with self._lock:
            snapshot = self.ledger.snapshot()
            offsets = dict(self.offsets)
            self._dirty = False
        try:
            # Converting up to MAX_PENDING advices takes long enough to stall requests: the
            # snapshot shares immutable entries, so it is converted on a thread.
            state = await asyncio.to_thread(snapshot.to_state)
            await self.store.save(self.name, SavedLedger(state, offsets, self.cluster_id))
        except BaseException:
            self._dirty = True
            raise
