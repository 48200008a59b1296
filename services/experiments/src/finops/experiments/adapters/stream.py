"""The experiments' intake: tagged cost events into the analysis, checkpointed, decisions out.

State and offsets are saved together (see :mod:`.checkpoints`); Kafka offsets are committed
only after the checkpoint that covers them, and on (re)assignment the consumer seeks to the
checkpoint's offsets, so every event is counted once across restarts. A conclusion is
checkpointed *before* it is announced on ``finops.experiments.v1`` and written to
PostgreSQL, so a crash in between re-announces it (at least once) and never forgets it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter

from finops.common.consumer import dlq_headers
from finops.common.events import Event, LlmCallEvent
from finops.common.log_position import ResumePlan
from finops.common.log_position import partition_key as _key
from finops.experiments.adapters.checkpoints import Checkpoint, PostgresCheckpointStore
from finops.experiments.adapters.repository import Experiment, ExperimentRepository
from finops.experiments.domain.analysis import ExperimentAnalysis, Tagged
from finops.experiments.domain.definition import ExperimentNotFound

log = logging.getLogger(__name__)

EVENTS = Counter("finops_experiments_events_total", "Cost events read", ["outcome"])
ANNOUNCED = Counter("finops_experiments_announcements_total", "Events announced", ["kind"])
NEGATIVE_CACHE_S = 1.0


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: AnalysisIntake) -> None:
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
                await self.intake.consumer.seek_to_beginning(tp)


class AnalysisIntake:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: PostgresCheckpointStore,
        repo: ExperimentRepository,
        *,
        name: str,
        cost_topic: str,
        experiments_topic: str,
        checkpoint_interval_s: float = 5.0,
        refresh_interval_s: float = 1.0,
    ) -> None:
        self.analysis = ExperimentAnalysis()
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.repo = repo
        self.name = name
        self.cost_topic = cost_topic
        self.experiments_topic = experiments_topic
        self.checkpoint_interval_s = checkpoint_interval_s
        self.refresh_interval_s = refresh_interval_s
        self.offsets: dict[str, int] = {}
        self.cluster_id: str | None = None
        self.events = 0
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self._last_refresh = 0.0
        self._not_running: dict[str, float] = {}
        self._task_types: set[str] = set()
        self._lock = asyncio.Lock()
        #: every experiment as of the last refresh (at most ``refresh_interval_s`` old), for
        #: the assignment API; a status other than running is always re-read from PostgreSQL
        self.known: dict[str, Experiment] = {}

    async def restore(self) -> bool:
        saved = await self.store.load(self.name)
        if saved is None:
            return False
        try:
            self.analysis = ExperimentAnalysis.from_state(saved.state)
        except (KeyError, ValueError, TypeError) as exc:
            log.error(
                "checkpoint unreadable; rebuilding the analysis from the earliest offsets",
                extra={"error": repr(exc)},
            )
            return False
        self.offsets = dict(saved.offsets)
        self.cluster_id = saved.cluster_id
        self.events = saved.events
        return True

    def resume_from(self, plan: ResumePlan) -> None:
        self.offsets = dict(plan.offsets)
        self.cluster_id = plan.cluster_id

    def subscribe(self) -> None:
        self.consumer.subscribe([self.cost_topic], listener=_SeekToCheckpoint(self))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            async with self._lock:
                tagged: list[Tagged] = []
                task_types: set[str] = set()
                for tp, records in batch.items():
                    for record in records:
                        event = await self._apply(record, task_types)
                        if event is not None:
                            tagged.append(event)
                        self.offsets[_key(tp)] = record.offset + 1
                        self._dirty = True
                conclusions = self.analysis.observe_many(tagged, time.time())
                if time.monotonic() - self._last_refresh >= self.refresh_interval_s:
                    conclusions += await self._refresh()
                await self._record_task_types(task_types)
                if conclusions or (
                    self._dirty
                    and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s
                ):
                    await self._checkpoint_locked()
                for conclusion in conclusions:
                    await self._announce_conclusion(conclusion)
            # getmany() returns without suspending while records are buffered: without this
            # the API would wait for a whole backlog to drain.
            await asyncio.sleep(0)
        await self.checkpoint()

    async def _apply(self, record: Any, task_types: set[str]) -> Tagged | None:
        if b'"experiment"' not in record.value:
            # Untagged: only its task type matters here (an experiment needs live traffic).
            try:
                task_type = json.loads(record.value)["data"]["task_type"]
            except (ValueError, KeyError, TypeError):
                task_type = None
            if isinstance(task_type, str) and task_type not in self._task_types:
                task_types.add(task_type)
            EVENTS.labels("untagged").inc()
            return None
        try:
            event = Event.from_kafka(record.value)
        except (ValueError, TypeError) as exc:
            EVENTS.labels("invalid").inc()
            await self._dead_letter(record, exc)
            return None
        if not isinstance(event, LlmCallEvent):
            EVENTS.labels("untagged").inc()
            return None
        data = event.data
        if data.task_type not in self._task_types:
            task_types.add(data.task_type)
        if data.experiment is None:  # ingest writes "experiment": null on untagged calls
            EVENTS.labels("untagged").inc()
            return None
        assert data.experiment is not None
        experiment_id = data.experiment.id
        if not self.analysis.is_tracked(experiment_id):
            await self._learn(experiment_id)
        if data.cost_usd is None:
            EVENTS.labels("unpriced").inc()
            self.analysis.ignored["unpriced"] = self.analysis.ignored.get("unpriced", 0) + 1
            return None
        self.events += 1
        EVENTS.labels("tagged").inc()
        return Tagged(
            event_id=str(event.id),
            experiment_id=experiment_id,
            variant=data.experiment.variant,
            cost_usd=data.cost_usd,
            success=data.success,
            latency_ms=data.latency_ms,
            quality=data.quality,
        )

    async def _learn(self, experiment_id: str) -> None:
        """Look up an experiment first met on an event (it may have started a moment ago)."""
        checked = self._not_running.get(experiment_id)
        if checked is not None and time.monotonic() - checked < NEGATIVE_CACHE_S:
            return
        try:
            experiment = await self.repo.get(experiment_id)
        except ExperimentNotFound:
            experiment = None
        if experiment is None or experiment.status != "running" or not experiment.started_at:
            self._not_running[experiment_id] = time.monotonic()
            return
        self.known[experiment.id] = experiment
        self.analysis.track(experiment.id, experiment.definition, experiment.started_at.timestamp())

    async def _refresh(self) -> list[dict[str, Any]]:
        """Follow the operators: newly started experiments, stops; expire old ones."""
        self._last_refresh = time.monotonic()
        now = time.time()
        everything = await self.repo.all()
        self.known = {e.id: e for e in everything}
        for experiment in everything:
            tracked = self.analysis.is_tracked(experiment.id)
            if experiment.status == "running" and experiment.started_at and not tracked:
                self.analysis.track(
                    experiment.id, experiment.definition, experiment.started_at.timestamp()
                )
            elif experiment.status == "stopped" and tracked and experiment.decision is None:
                self.analysis.halt(experiment.id, "stopped by an operator", now)
                self._dirty = True
        return self.analysis.expire_all(now)

    async def _record_task_types(self, task_types: set[str]) -> None:
        if task_types:
            await self.repo.record_task_types(task_types)
            self._task_types |= task_types

    async def _announce_conclusion(self, conclusion: dict[str, Any]) -> None:
        self.known.pop(conclusion["experiment_id"], None)
        await self.announce({"kind": "decision", **conclusion})
        await self.repo.conclude(
            conclusion["experiment_id"],
            conclusion["status"],
            {k: conclusion[k] for k in ("winner", "reason", "decided_at", "winner_arm")},
            "analysis",
        )

    async def announce(self, body: dict[str, Any]) -> None:
        await self.producer.send_and_wait(
            self.experiments_topic,
            json.dumps(body, default=str).encode(),
            key=str(body["experiment_id"]).encode(),
        )
        ANNOUNCED.labels(body["kind"]).inc()

    async def _dead_letter(self, record: Any, error: BaseException) -> None:
        await self.producer.send_and_wait(
            f"{record.topic}.dlq",
            record.value,
            key=record.key,
            headers=list(record.headers or ())
            + dlq_headers(record.topic, record.partition, record.offset, error, attempts=1),
        )

    async def checkpoint(self) -> None:
        async with self._lock:
            await self._checkpoint_locked()

    async def _checkpoint_locked(self) -> None:
        await self.store.save(
            self.name,
            Checkpoint(self.analysis.to_state(), dict(self.offsets), self.events, self.cluster_id),
        )
        commit = {
            tp: OffsetAndMetadata(self.offsets[_key(tp)], "")
            for tp in self.consumer.assignment()
            if _key(tp) in self.offsets
        }
        if commit:
            await self.consumer.commit(commit)
        self._dirty = False
        self._last_checkpoint = time.monotonic()
