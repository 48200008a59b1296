"""The optimizer's event intake: cost and error events into the engine, checkpointed.

State and offsets are saved together (see :mod:`.checkpoints`); Kafka offsets are committed
only after the checkpoint that covers them, and on (re)assignment the consumer seeks to the
checkpoint's offsets, so every event is applied to the state exactly once. Before it resumes,
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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge

from finops.common.consumer import dlq_headers
from finops.common.datastores import is_dependency_failure
from finops.common.events import ErrorEvent, Event, LlmCallEvent
from finops.common.kafka import start_subscribed
from finops.common.log_position import ResumePlan
from finops.common.log_position import partition_key as _key
from finops.common.topics import AGENT_COST, AGENT_ERROR, ALERTS
from finops.optimizer.adapters.checkpoints import Checkpoint, CheckpointStore, serialize_in_parts
from finops.optimizer.domain.engine import OptimizerEngine

log = logging.getLogger(__name__)

EVENTS = Counter("finops_optimizer_events_total", "Events taken in", ["topic", "outcome"])
ALERTS_EMITTED = Counter("finops_optimizer_alerts_total", "Alerts emitted", ["kind"])
CHECKPOINT_FAILURES = Counter(
    "finops_optimizer_checkpoint_failures_total", "Periodic checkpoints the database refused"
)
CHECKPOINT_AGE = Gauge("finops_optimizer_checkpoint_timestamp_seconds", "Last checkpoint time")


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: EventIntake) -> None:
        self.intake = intake

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self.intake.checkpoint()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            offset = self.intake.offsets.get(_key(tp))
            if offset is not None:
                self.intake.consumer.seek(tp, offset)
            else:
                # Not covered by the checkpoint: none of its events are in the state yet.
                await self.intake.consumer.seek_to_beginning(tp)


class EventIntake:
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
        topics: tuple[str, ...] = (AGENT_COST.name, AGENT_ERROR.name),
        alerts_topic: str = ALERTS.name,
        experiments_topic: str | None = None,
    ) -> None:
        # Experiment decisions go through the same checkpointed path as the events, so a
        # promotion is applied once and survives restarts.
        self.experiments_topic = experiments_topic
        self.announcements_read = 0
        self.topics = topics + ((experiments_topic,) if experiments_topic else ())
        self.alerts_topic = alerts_topic
        self.engine = engine
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.name = name
        self.checkpoint_every_events = checkpoint_every_events
        self.checkpoint_interval_s = checkpoint_interval_s
        self.on_alert = on_alert
        self.offsets: dict[str, int] = {}
        self.cluster_id: str | None = None  # the broker cluster ``offsets`` belong to
        self.events = 0
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._retry_checkpoint_at = 0.0  # after a failed one: not before this monotonic time
        self._lock = asyncio.Lock()
        self._pending_sends: list[asyncio.Future[Any]] = []

    async def restore(self) -> bool:
        """Load the last checkpoint into the engine; False when there is none."""
        saved = await self.store.load(self.name)
        if saved is None:
            return False
        try:
            state = saved.state if isinstance(saved.state, dict) else json.loads(saved.state)
            self.engine = OptimizerEngine.from_state(state)
        except (KeyError, ValueError, TypeError) as exc:
            # A checkpoint from another version of the engine: the log is the source of
            # truth, so rebuild the state by replaying the topics from their beginning.
            log.error(
                "checkpoint unreadable; rebuilding the state from the earliest offsets",
                extra={"error": repr(exc)},
            )
            return False
        self.offsets = dict(saved.offsets)
        self.cluster_id = saved.cluster_id
        self.events = saved.events
        log.info("restored checkpoint", extra={"events": saved.events, "offsets": saved.offsets})
        return True

    def resume_from(self, plan: ResumePlan) -> None:
        """Keep only the offsets the broker's log still holds (the state stays as restored)."""
        self.offsets = dict(plan.offsets)
        self.cluster_id = plan.cluster_id

    async def start(self) -> None:
        """Start the consumer; its group join and the seek to the checkpoint run in the
        background (:func:`~finops.common.kafka.start_subscribed`)."""
        await start_subscribed(self.consumer, self.topics, _SeekToCheckpoint(self))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            # Under the lock: a checkpoint asked for by the API must not interleave with
            # applying events, or its state and its offsets would describe different moments.
            async with self._lock:
                for tp, records in batch.items():
                    for record in records:
                        await self._apply(record)
                        self.offsets[_key(tp)] = record.offset + 1
                    self._since_checkpoint += len(records)
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
            # getmany() returns without suspending while records are buffered: without this
            # the API would wait for a whole backlog to drain.
            await asyncio.sleep(0)
        await self.checkpoint()

    async def _apply(self, record: Any) -> None:
        if record.topic == self.experiments_topic:
            self._adopt(record)
            return
        try:
            event = Event.from_kafka(record.value)
        except (ValueError, TypeError) as exc:
            EVENTS.labels(record.topic, "invalid").inc()
            await self._dead_letter(record, exc)
            return
        try:
            if isinstance(event, LlmCallEvent):
                alerts = self.engine.observe(event)
            elif isinstance(event, ErrorEvent):
                alerts = self.engine.observe_error(event)
            else:
                alerts = []
        except Exception as exc:  # one bad event must not stop the stream: log, park, go on
            log.exception("engine failed on an event")
            EVENTS.labels(record.topic, "failed").inc()
            await self._dead_letter(record, exc)
            return
        self.events += 1
        EVENTS.labels(record.topic, "applied").inc()
        for alert in alerts:
            await self.emit_alert(alert)

    def _adopt(self, record: Any) -> None:
        self.announcements_read += 1
        try:
            announcement = json.loads(record.value)
            adopted = isinstance(announcement, dict) and self.engine.adopt_decision(announcement)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable experiment announcement", extra={"error": repr(exc)})
            EVENTS.labels(record.topic, "invalid").inc()
            return
        EVENTS.labels(record.topic, "promoted" if adopted else "no_winner").inc()

    async def emit_alert(self, alert: dict[str, Any]) -> None:
        ALERTS_EMITTED.labels(alert.get("kind", "?")).inc()
        if self.on_alert:
            self.on_alert(alert)
        future = await self.producer.send(
            self.alerts_topic,
            json.dumps(alert, default=str).encode(),
            key=str(alert.get("subject", "")).encode(),
        )
        self._pending_sends.append(future)

    async def _dead_letter(self, record: Any, error: BaseException) -> None:
        await self.producer.send_and_wait(
            f"{record.topic}.dlq",
            record.value,
            key=record.key,
            headers=list(record.headers or ())
            + dlq_headers(record.topic, record.partition, record.offset, error, attempts=1),
        )

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

    async def checkpoint(self) -> None:
        """Save state + offsets, then commit the offsets to the group."""
        async with self._lock:
            await self._checkpoint_locked()

    async def _checkpoint_locked(self) -> None:
        if self._pending_sends:
            await asyncio.gather(*self._pending_sends)
            self._pending_sends.clear()
        # The lock is held: no event is applied while the parts are built.
        state = await serialize_in_parts(self.engine.state_parts())
        await self.store.save(
            self.name, Checkpoint(state, dict(self.offsets), self.events, self.cluster_id)
        )
        assigned = self.consumer.assignment()
        commit = {
            tp: OffsetAndMetadata(self.offsets[_key(tp)], "")
            for tp in assigned
            if _key(tp) in self.offsets
        }
        if commit:
            await self.consumer.commit(commit)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        CHECKPOINT_AGE.set_to_current_time()
