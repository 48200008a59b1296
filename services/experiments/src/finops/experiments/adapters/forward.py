"""Stage 1 of the analysis: tagged cost events re-keyed by experiment id.

Every instance reads its partitions of ``agent.cost.v1`` (keyed by agent) in the intake group,
learns the task types it sees, parks a record that is not an ``agent.llm_call`` event (one
that does not decode, or an ``agent.error``) on ``agent.cost.v1.dlq``,
and forwards what the analysis needs of each tagged call (a
:class:`~finops.experiments.domain.tagged.Tagged`; one record per experiment and slice of
up to 100 calls) to ``finops.experiment-events.v1``, in the partition of its experiment id:
all of one experiment's events reach one partition, whose owner keeps the experiment's
statistics (stage 2, :mod:`.stream`). The stage is an
:class:`~finops.common.consumer.AtLeastOnceConsumer`: offsets are committed after a batch's
forwarded records are acknowledged, once a batch (at least once; the analysis drops an event
id it has counted already), and the event that does not decode is parked by it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from finops.common.consumer import AtLeastOnceConsumer
from finops.common.events import EventTopics, LlmCallEvent
from finops.common.metrics import counter_by
from finops.common.partitions import HANDLE_AT_ONCE, partition_for
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.domain.tagged import Tagged, encode_tagged

EVENTS = counter_by(
    "finops_experiments_events_total",
    "Cost events the forwarding stage read from agent.cost.v1, by outcome (tagged: in an"
    " experiment, forwarded; untagged; invalid: parked)",
    "outcome",
    ("untagged", "invalid", "tagged"),
)


class TaggedForwarder:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        repo: ExperimentRepository,
        *,
        events_topic: str,
        partitions: int,
        events: EventTopics | None = None,
    ) -> None:
        self.consumer = consumer
        #: the event topics: the cost topic read here carries ``agent.llm_call`` events only
        self.event_topics = events or EventTopics()
        self.producer = producer
        self.repo = repo
        self.events_topic = events_topic
        self.partitions = partitions
        self.forwarded = 0
        self._task_types: set[str] = set()
        self._new_task_types: set[str] = set()
        #: tagged calls not sent yet, by experiment id (sent at HANDLE_AT_ONCE or batch end)
        self._unsent: dict[str, list[Tagged]] = {}
        self._sends: list[asyncio.Future[Any]] = []
        # One try: a record that does not decode will not decode on a second one.
        self.stream = AtLeastOnceConsumer(
            consumer,
            producer,
            self.forward,
            service="experiments",
            max_attempts=1,
            records_per_turn=HANDLE_AT_ONCE,
            flush=self.flush,
        )

    async def start(self, topic: str) -> None:
        """Start the consumer; its group join runs in the background."""
        await self.stream.start_subscribed([topic])

    async def run(self, stop: asyncio.Event) -> None:
        await self.stream.run(stop)

    async def forward(self, record: Any) -> None:
        """Queue one cost record's tagged call with its experiment's others (one record per
        experiment and ``HANDLE_AT_ONCE`` calls); raises for a record that does not decode."""
        tagged = self._tagged(record)
        if tagged is None:
            return
        unsent = self._unsent.setdefault(tagged.experiment_id, [])
        unsent.append(tagged)
        if len(unsent) >= HANDLE_AT_ONCE:
            await self._send(tagged.experiment_id)

    async def flush(self) -> None:
        """Send what is queued, wait for the acknowledgements, record new task types."""
        for experiment_id in list(self._unsent):
            await self._send(experiment_id)
        sends, self._sends = self._sends, []
        await asyncio.gather(*sends)
        if self._new_task_types:
            await self.repo.record_task_types(self._new_task_types)
            self._task_types |= self._new_task_types
            self._new_task_types = set()

    async def _send(self, experiment_id: str) -> None:
        events = self._unsent.pop(experiment_id)
        self._sends.append(
            await self.producer.send(
                self.events_topic,
                encode_tagged(events),
                key=experiment_id.encode(),
                partition=partition_for(experiment_id, self.partitions),
            )
        )
        self.forwarded += len(events)

    def _tagged(self, record: Any) -> Tagged | None:
        # Every record is decoded, tagged or not: one that is not a call event is
        # dead-lettered, and only a call teaches a task type (an experiment on a task type no
        # agent reported is refused).
        try:
            event = cast(LlmCallEvent, self.event_topics.decode(record.topic, record.value))
        except (ValueError, TypeError):
            EVENTS.labels("invalid").inc()
            raise
        data = event.data
        if data.task_type not in self._task_types:
            self._new_task_types.add(data.task_type)
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
