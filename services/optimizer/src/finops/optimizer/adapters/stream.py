"""The optimizer's event intake: cost and error events into the engine, checkpointed.

It is an :class:`~finops.common.consumer.AtLeastOnceConsumer` with the checkpointed option.
State and offsets are saved together (see :mod:`finops.common.checkpoints`); a record that
cannot be applied (one that is not an event of the type its topic carries, an experiment
announcement that cannot be read, an event the engine fails on) is parked on its topic's
dead-letter topic; Kafka offsets are committed
only after the checkpoint that covers them, and on (re)assignment the consumer seeks to the
checkpoint's offsets, so every event is applied to the state exactly once. Operator changes
are recorded in the settings ledger before they are applied, and a restored state takes the
ledger's changes it has not seen (those made with partitioned learning since its checkpoint:
:func:`~finops.optimizer.service_layer.commands.reconcile`). Before it resumes,
:meth:`EventIntake.resume_from` drops saved offsets that no longer point into the broker's log
(see :mod:`finops.common.log_position`); those partitions, and every partition the checkpoint
does not name, are read from their earliest offset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter, Gauge

from finops.common.checkpoints import Checkpoint, CheckpointStore, serialize_in_parts
from finops.common.consumer import AtLeastOnceConsumer, CheckpointedState
from finops.common.datastores import is_dependency_failure
from finops.common.events import EventTopics
from finops.common.log_position import ResumePlan
from finops.common.metrics import counter_by
from finops.common.partitions import HANDLE_AT_ONCE
from finops.common.topics import ALERTS
from finops.optimizer.domain.engine import Adoption, OptimizerEngine
from finops.optimizer.service_layer.commands import (
    OperatorChange,
    SettingsLedger,
    take_from_ledger,
)

log = logging.getLogger(__name__)

EVENTS = Counter(
    "finops_optimizer_events_total",
    "Records the learning took in, by topic and outcome (applied, duplicate, redelivered,"
    " invalid, failed; promoted, repeated, no_winner, not_a_decision for experiment"
    " announcements)",
    ["topic", "outcome"],
)


def taken(before: tuple[int, int], engine: OptimizerEngine) -> str:
    """The outcome of an event the engine took, given its :attr:`~OptimizerEngine.tally`
    before: ``applied``; ``redelivered`` when its id was counted already and its record is one
    read again (forwarded twice); ``duplicate`` when its id was counted already in another
    record (an agent sent it again). The last two are ignored."""
    counted, redelivered = before
    if engine.counted > counted:
        return "applied"
    return "redelivered" if engine.tally[1] > redelivered else "duplicate"


#: the kinds the optimizer raises
ALERT_KINDS = ("budget", "anomaly", "drift")
#: every kind at 0 from the start: a series that appeared with its first alert would hold 1
#: from its first sample, and ``increase()`` (the alerts FinopsBudgetBurn and
#: FinopsSpendAnomaly) would miss the first alert after each start
ALERTS_EMITTED = counter_by(
    "finops_optimizer_alerts_total",
    "Alerts the optimizer wrote to finops.alerts.v1, by kind (budget, anomaly, drift)",
    "kind",
    ALERT_KINDS,
)
CHECKPOINT_FAILURES = Counter(
    "finops_optimizer_checkpoint_failures_total",
    "Periodic checkpoints of the learning PostgreSQL refused (each tried again an interval later)",
)
CHECKPOINT_AGE = Gauge(
    "finops_optimizer_checkpoint_timestamp_seconds",
    "Unix time in seconds of the last checkpoint of the learning (state and offsets)",
)


def announcement_of(raw: bytes) -> dict[str, Any]:
    """An experiment announcement's JSON object; ValueError for anything else."""
    announcement = json.loads(raw)
    if not isinstance(announcement, dict):
        raise ValueError("an experiment announcement must be a JSON object")
    return announcement


def adopt(engine: OptimizerEngine, announcement: dict[str, Any]) -> Adoption:
    """Adopt an experiment's decision into ``engine``; its outcome on :data:`EVENTS`, as the
    engine says: ``promoted``, ``no_winner``, or ``repeated`` (the outbox announces at least
    once: the same decision again is not a new promotion)."""
    return engine.adopt_decision(announcement)


async def send_alert(
    producer: AIOKafkaProducer, topic: str, alert: dict[str, Any]
) -> asyncio.Future[Any]:
    """Send one alert (keyed by its subject) and count it; the send's acknowledgement."""
    ALERTS_EMITTED.labels(alert.get("kind", "?")).inc()
    return await producer.send(
        topic, json.dumps(alert, default=str).encode(), key=str(alert.get("subject", "")).encode()
    )


class EventIntake(CheckpointedState):
    """Runs the engine over the input topics and keeps its checkpoint current."""

    def __init__(
        self,
        engine: OptimizerEngine,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: CheckpointStore,
        *,
        name: str = "optimizer",
        checkpoint_every_events: int = 20_000,
        checkpoint_interval_s: float = 5.0,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        events: EventTopics | None = None,
        alerts_topic: str = ALERTS.name,
        experiments_topic: str | None = None,
        ledger: SettingsLedger | None = None,
    ) -> None:
        super().__init__(store, name)
        self.store: CheckpointStore = store
        #: where operator changes are recorded first (None: only in the checkpoint)
        self.ledger = ledger
        self._changing = asyncio.Lock()  # changes numbered and applied in the same order
        # Experiment decisions go through the same checkpointed path as the events, so a
        # promotion is applied once and survives restarts.
        self.experiments_topic = experiments_topic
        self.announcements_read = 0
        #: the event topics, each decoded by the event type it carries
        self.event_topics = events = events or EventTopics()
        self.topics = (events.cost, events.error) + (
            (experiments_topic,) if experiments_topic else ()
        )
        self.alerts_topic = alerts_topic
        self.engine = engine
        self.consumer = consumer
        self.producer = producer
        self.checkpoint_every_events = checkpoint_every_events
        self.checkpoint_interval_s = checkpoint_interval_s
        self.on_alert = on_alert
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._retry_checkpoint_at = 0.0  # after a failed one: not before this monotonic time
        self._pending_sends: list[asyncio.Future[Any]] = []
        # One try: the engine is idempotent on the event id, so a second try of an event it
        # failed on half-way would pass as applied; a failed event is parked at once.
        self.stream = AtLeastOnceConsumer(
            consumer,
            producer,
            self._apply,
            service="optimizer",
            max_attempts=1,
            records_per_turn=HANDLE_AT_ONCE,
            checkpointed=self,
        )

    def load_state(self, state: dict[str, Any]) -> None:
        self.engine = OptimizerEngine.from_state(state)

    async def restore(self) -> bool:
        """Load the last checkpoint (:meth:`CheckpointedState.restore`), then apply the
        ledger's operator changes the state has not seen: those made with partitioned learning
        since the checkpoint, or since the first start (no checkpoint, or one unreadable)."""
        restored = await super().restore()
        await take_from_ledger(self.engine, self.ledger)
        return restored

    def resume_from(self, plan: ResumePlan) -> None:
        """Keep the offsets the broker's log still holds (:meth:`CheckpointedState.resume_from`)
        and forget the records the state took from the partitions read again from their earliest
        offset: theirs is another log, whose records are not ones read again (an event sent
        again there is a duplicate, see :meth:`.SpendAnalytics.read_again`)."""
        super().resume_from(plan)
        self.engine.analytics.forget_positions(plan.reset)

    async def start(self) -> None:
        """Start the consumer; its group join and the seek to the checkpoint run in the
        background (:func:`~finops.common.kafka.start_subscribed`)."""
        await self.stream.start_subscribed(self.topics)

    async def run(self, stop: asyncio.Event) -> None:
        """Apply events until ``stop``, checkpointing as configured, and once more at the end.

        Events are applied under the lock: a checkpoint asked for by the API must not
        interleave with them, or its state and its offsets would describe different moments.
        """
        await self.stream.run(stop)

    async def after_batch(self) -> None:
        now = time.monotonic()
        if (
            self._since_checkpoint
            and now >= self._retry_checkpoint_at
            and (
                self._since_checkpoint >= self.checkpoint_every_events
                or now - self._last_checkpoint >= self.checkpoint_interval_s
            )
        ):
            await self._checkpoint_or_retry_later()

    async def _apply(self, record: Any) -> None:
        """One record into the engine; raises for one that cannot be applied (it is parked)."""
        self._since_checkpoint += 1
        if record.topic == self.experiments_topic:
            self._adopt(record)
            return
        try:  # an event of the other type than its topic carries is refused too
            event = self.event_topics.decode(record.topic, record.value)
        except (ValueError, TypeError):
            EVENTS.labels(record.topic, "invalid").inc()
            raise
        before = self.engine.tally
        try:
            alerts = self.engine.take(event, (f"{record.topic}:{record.partition}", record.offset))
        except Exception:  # one bad event must not stop the stream: log, park, go on
            log.exception("engine failed on an event")
            EVENTS.labels(record.topic, "failed").inc()
            raise
        self.events += 1
        EVENTS.labels(record.topic, taken(before, self.engine)).inc()
        for alert in alerts:
            await self.emit_alert(alert)

    def _adopt(self, record: Any) -> None:
        """Adopt an experiment's decision; raises for an announcement that cannot be read
        (ValueError, KeyError or TypeError: it is parked, as a bad event is)."""
        self.announcements_read += 1
        try:
            announcement = json.loads(record.value)
            if not isinstance(announcement, dict):
                raise TypeError(f"an announcement is a JSON object, not {announcement!r:.40}")
            if announcement.get("kind") != "decision":  # a start or a stop: nothing to adopt
                EVENTS.labels(record.topic, "not_a_decision").inc()
                return
            outcome = adopt(self.engine, announcement)
        except (ValueError, KeyError, TypeError):
            EVENTS.labels(record.topic, "invalid").inc()
            raise
        EVENTS.labels(record.topic, outcome).inc()

    async def emit_alert(self, alert: dict[str, Any]) -> None:
        if self.on_alert:
            self.on_alert(alert)
        self._pending_sends.append(await send_alert(self.producer, self.alerts_topic, alert))

    async def _checkpoint_or_retry_later(self) -> None:
        """A periodic checkpoint PostgreSQL cannot take now is tried again an interval later.

        The events stay applied and their offsets uncommitted, so an outage delays the
        checkpoint without losing or double-counting anything; stopping the intake over it
        would stop the optimizer learning until a restart.
        """
        try:
            await self._checkpoint_locked()
        except Exception as exc:
            if not is_dependency_failure(exc):
                raise
            CHECKPOINT_FAILURES.inc()
            log.warning("checkpoint failed; retrying later", extra={"error": repr(exc)})
            self._retry_checkpoint_at = time.monotonic() + self.checkpoint_interval_s

    def configured(self) -> OptimizerEngine:
        """The live engine operator changes go to (a :class:`ChangeTarget`)."""
        return self.engine

    async def apply(self, change: OperatorChange) -> Any:
        """Record an operator change in the ledger, apply it to the live engine and checkpoint
        it before answering (the ledger alone keeps it through a crash: :meth:`restore`).

        The change and its number go into the engine under the checkpoint's lock: a periodic
        checkpoint serialises the state a part at a time, yielding between parts, and one that
        held the number without the change would make :meth:`restore` skip the change."""
        async with self._changing:
            if self.ledger is not None:
                change = change.numbered(await self.ledger.record(change))
            async with self.lock:
                result = change.apply(self.engine)
                if change.seq is not None:
                    self.engine.operator_seq[change.key] = change.seq
        await self.checkpoint()
        return result

    async def checkpoint(self) -> None:
        """Save state + offsets, then commit the offsets to the group."""
        async with self.lock:
            await self._checkpoint_locked()

    async def _checkpoint_locked(self) -> None:
        if self._pending_sends:
            await asyncio.gather(*self._pending_sends)
            self._pending_sends.clear()
        # The lock is held: no event is applied while the parts are built. The records taken
        # before the offsets saved are never read again by this intake: left out (up to
        # megabytes of them, RecordsTaken.to_state)
        state = await serialize_in_parts(self.engine.state_parts(resume_at=dict(self.offsets)))
        await self.store.save(
            self.name, Checkpoint(state, dict(self.offsets), self.events, self.cluster_id)
        )
        await self.commit_offsets(self.consumer)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        CHECKPOINT_AGE.set_to_current_time()
