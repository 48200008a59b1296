"""Stage 1 of the analysis: tagged cost events re-keyed by experiment id.

Every instance reads its partitions of ``agent.cost.v1`` (keyed by agent) in the intake group,
learns the task types it sees, parks an event that does not decode on ``agent.cost.v1.dlq``,
and forwards what the analysis needs of each tagged call (a
:class:`~finops.experiments.domain.analysis.Tagged`; one record per experiment and slice of
up to 100 calls) to ``finops.experiment-events.v1``, in the partition of its experiment id:
all of one experiment's events reach one partition, whose owner keeps the experiment's
statistics (stage 2, :mod:`.stream`). Offsets are committed after a batch's forwarded records
are acknowledged (at least once; the analysis drops an event id it has counted already).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from finops.common.consumer import park_on_dlq
from finops.common.events import Event, LlmCallEvent
from finops.common.partitions import forward_in_slices, partition_for
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.domain.analysis import Tagged, encode_tagged

EVENTS = Counter("finops_experiments_events_total", "Cost events read", ["outcome"])


class TaggedForwarder:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        repo: ExperimentRepository,
        *,
        events_topic: str,
        partitions: int,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.repo = repo
        self.events_topic = events_topic
        self.partitions = partitions
        self.forwarded = 0
        self._task_types: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        await forward_in_slices(self.consumer, self.forward, stop)

    async def forward(self, records: list[Any]) -> list[asyncio.Future[Any]]:
        """Queue a slice's tagged calls, one record per experiment (their delivery futures);
        record the slice's new task types."""
        task_types: set[str] = set()
        by_experiment: dict[str, list[Tagged]] = {}
        for record in records:
            tagged = await self._tagged(record, task_types)
            if tagged is not None:
                by_experiment.setdefault(tagged.experiment_id, []).append(tagged)
        sends = [
            await self.producer.send(
                self.events_topic,
                encode_tagged(events),
                key=experiment_id.encode(),
                partition=partition_for(experiment_id, self.partitions),
            )
            for experiment_id, events in by_experiment.items()
        ]
        self.forwarded += sum(len(events) for events in by_experiment.values())
        if task_types:
            await self.repo.record_task_types(task_types)
            self._task_types |= task_types
        return sends

    async def _tagged(self, record: Any, task_types: set[str]) -> Tagged | None:
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
            await park_on_dlq(self.producer, record, exc)
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
        EVENTS.labels("tagged").inc()
        return Tagged(
            event_id=str(event.id),
            experiment_id=data.experiment.id,
            variant=data.experiment.variant,
            cost_usd=data.cost_usd,  # None (unpriced) is counted as such by the analysis
            success=data.success,
            latency_ms=data.latency_ms,
            quality=data.quality,
        )
