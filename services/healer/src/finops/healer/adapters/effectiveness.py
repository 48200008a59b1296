"""Outcomes of advice into the ledger (learned effectiveness + stats), checkpointed.

Every healer instance reads every partition of ``finops.healing.v1`` (the advice of all
instances), ``agent.cost.v1`` and ``agent.error.v1`` itself, so each one learns from the whole
fleet and answers the same stats. The ledger and the offsets it covers are saved together,
in one transaction, as the segments that changed since the last save (see
:mod:`finops.healer.adapters.ledger_store`): the intake is an
:class:`~finops.common.consumer.AtLeastOnceConsumer` with the checkpointed option, reading
without a group. At start-up the instance restores them and resumes from those offsets,
after :func:`finops.common.log_position.plan_resume` dropped any the broker's log no longer
holds (those partitions are read from the earliest offset, the
state kept). A restart therefore neither loses what was learned nor counts an outcome twice.

A record of ``finops.healing.v1`` the ledger cannot read is parked on
``finops.healing.v1.dlq`` (this intake is the topic's only reader). A record of
``agent.cost.v1`` or ``agent.error.v1`` that is not an event of the type its topic carries is
counted and logged, not parked again: the healer's validating agent parks those of
``agent.error.v1``, the optimizer and the experiments service those of ``agent.cost.v1``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from finops.common.consumer import AtLeastOnceConsumer, CheckpointedState
from finops.common.datastores import is_dependency_failure
from finops.common.events import ErrorEvent, Event, EventTopics, LlmCallEvent, price_call
from finops.common.provider_errors.payload import from_error_data
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.common.topics import AGENT_COST, AGENT_ERROR, HEALING, TopicSpec
from finops.healer.adapters.ledger_store import LedgerStore
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.healing_records import AdviceRecord, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.ledger_checkpoint import LedgerChanges
from finops.healer.domain.remedies import Action

log = logging.getLogger(__name__)
OUTCOMES = Counter(
    "finops_healer_outcome_records_total",
    "Records the effectiveness learning read, by topic and outcome (applied or invalid)",
    ["topic", "outcome"],
)
TOPICS: tuple[TopicSpec, ...] = (HEALING, AGENT_COST, AGENT_ERROR)
#: Records applied between two turns of the event loop (about 5 ms of classifying).
YIELD_EVERY = 100


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


def price_baseline(provider: str, model: str, outcome: Outcome) -> float | None:
    """An outcome's usage priced on ``provider``/``model`` at the call's time (genai-prices)."""
    when = datetime.fromtimestamp(outcome.at_s, UTC)
    priced = price_call(provider, model, outcome.usage or {}, when).total_usd
    return None if priced is None else float(priced)


class OutcomeIntake(CheckpointedState):
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
        producer: AIOKafkaProducer | None = None,
        events: EventTopics | None = None,
    ) -> None:
        super().__init__(store, name)
        self.store: LedgerStore = store
        #: this instance's own checkpoint is ``<name>@<writer>`` (see adapters/ledger_store)
        self.writer = uuid.uuid4().hex[:12]
        self.ledger = ledger
        ledger.baseline_price = price_baseline
        self.consumer = consumer
        self.classifier = classifier
        self.checkpoint_interval_s = checkpoint_interval_s
        self.topics = topics
        #: the event topics, each decoded by the event type it carries
        self.event_topics = events or EventTopics()
        self.records = 0
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        # An unreadable event is counted and skipped by ``apply`` (the validating agent, the
        # optimizer and the experiments service park those); an unreadable advice, or a
        # record ``apply`` fails on, is parked at once (a second try of one it failed on
        # half-way would count it twice).
        self.stream = AtLeastOnceConsumer(
            consumer,
            producer,
            self._apply,
            service="healer",
            max_attempts=1,
            records_per_turn=YIELD_EVERY,
            checkpointed=self,
        )

    def load_state(self, state: dict[str, Any]) -> None:
        self.ledger = HealingLedger.from_state(state, baseline_price=price_baseline)

    async def start(self) -> None:
        """Start the consumer on every partition the broker has of every topic (no group),
        each from its saved offset or the beginning."""
        await self.stream.start_assigned_topics([t.name for t in self.topics])

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop``: ``YIELD_EVERY`` records and their offsets at a time under the
        lock (a checkpoint between two is consistent; the API gets its turn)."""
        await self.stream.run(stop)

    async def after_batch(self) -> None:
        if self._dirty and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s:
            self._last_checkpoint = time.monotonic()
            await self._checkpoint_or_retry_later()

    async def _apply(self, record: Any) -> None:
        self._dirty = True  # the offsets move past the record, applied or parked
        self.apply(record.topic, record.value)

    def apply(self, topic: str, value: bytes) -> None:
        """One record into the ledger. An unreadable advice raises (ValueError, KeyError or
        TypeError: the consumer parks it); an unreadable event is counted and skipped."""
        try:
            if topic == HEALING.name:
                self.ledger.advised(advice_record(value))
            else:
                self._apply_event(self.event_topics.decode(topic, value))
        except (ValueError, KeyError, TypeError) as exc:
            OUTCOMES.labels(topic, "invalid").inc()
            if topic == HEALING.name:
                raise
            log.warning("unreadable record skipped", extra={"topic": topic, "error": repr(exc)})
            return
        self.records += 1
        OUTCOMES.labels(topic, "applied").inc()

    def _apply_event(self, event: Event) -> None:
        at_s = event.time.timestamp()
        if isinstance(event, ErrorEvent):
            reported = from_error_data(event.data)
            kind = self.classifier.classify(reported.error, reported.hint).kind
            advice_id = event.data.remedy.advice_id if event.data.remedy else None
            self.ledger.failed(kind, advice_id, at_s, event.id)
        elif isinstance(event, LlmCallEvent) and event.data.remedy is not None:
            data = event.data
            # priced on the model its chain first asked for by the ledger, now or once the
            # advice arrives (read first, the call waits for it)
            self.ledger.healed(
                Outcome(
                    event.data.remedy.advice_id,
                    data.success,
                    at_s,
                    data.cost_usd or 0.0,
                    None,
                    data.provider,
                    data.model,
                    data.usage.model_dump(mode="json"),
                )
            )

    async def _checkpoint_or_retry_later(self) -> None:
        try:
            await self._checkpoint_locked()
        except Exception as exc:  # PostgreSQL down: the next interval tries again
            if not is_dependency_failure(exc):
                raise
            log.warning("healer checkpoint failed; retrying later", extra={"error": repr(exc)})

    async def checkpoint(self) -> None:
        async with self.lock:
            await self._checkpoint_locked()

    async def _checkpoint_locked(self) -> None:
        # Only the segments changed since the last checkpoint are converted and written
        # (the whole ledger at MAX_PENDING took two seconds of CPU, every time); they share
        # immutable entries with the live ledger, so they are encoded on a thread.
        changes = self.ledger.take_changes()
        try:
            if not await self._save(changes):  # our checkpoint was removed as stale
                self.ledger.mark_all_changed()
                changes = self.ledger.take_changes()
                await self._save(changes)
        except BaseException:
            self.ledger.give_back(changes)
            raise
        self._dirty = False

    async def _save(self, changes: LedgerChanges) -> bool:
        encoded = await asyncio.to_thread(changes.encode)
        return await self.store.save_changes(
            self.name, self.writer, encoded, dict(self.offsets), self.cluster_id
        )
