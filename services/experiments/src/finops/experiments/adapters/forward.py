"""Stage 1 of the analysis: tagged cost events re-keyed by experiment id.

Every instance reads its partitions of ``agent.cost.v1`` and ``agent.error.v1`` (keyed by
agent) in the intake group, learns the task types it sees on calls, parks a record that is
not an event of the type its topic carries (one that does not decode, or an event of the
other type) on ``<topic>.dlq``, and forwards what the analysis needs of each tagged call,
and of each error tagged with an experiment (the one after which a call assigned to it gave
up: a failure of its variant), as a :class:`~finops.experiments.domain.tagged.Tagged` (one
record per experiment and slice of up to 100 calls; the give-ups in slices of their own,
whose missing latency an analysis of a version before them cannot read: it parks those, not
the calls beside them; each call's ``[provider, model]`` in the record's
:data:`~finops.experiments.domain.tagged.ARMS_HEADER`, which tells a fallback from its
variant's model) to ``finops.experiment-events.v1``, in the partition of its experiment id:
all of one experiment's events reach one partition, whose owner keeps the experiment's
statistics (stage 2, :mod:`.analysis_intake`). The stage is an
:class:`~finops.common.consumer.AtLeastOnceConsumer`: offsets are committed after a batch's
forwarded records are acknowledged, once a batch (at least once; the analysis drops an event
id it has counted already), and the event that does not decode is parked by it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from finops.common.consumer import AtLeastOnceConsumer
from finops.common.events import ErrorEvent, EventTopics, LlmCallEvent
from finops.common.metrics import counter_by
from finops.common.partitions import HANDLE_AT_ONCE, partition_for
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.domain.tagged import ARMS_HEADER, Tagged, encode_arms, encode_tagged

EVENTS = counter_by(
    "finops_experiments_events_total",
    "Events the forwarding stage read from agent.cost.v1 and agent.error.v1, by outcome"
    " (tagged: in an experiment, forwarded, an error only when its call gave up; untagged;"
    " invalid: parked)",
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
        #: tagged calls not sent yet, by experiment id and whether they gave up (sent at
        #: HANDLE_AT_ONCE or batch end)
        self._unsent: dict[tuple[str, bool], list[Tagged]] = {}
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

    async def start(self) -> None:
        """Start the consumer on both event topics; its group join runs in the background."""
        await self.stream.start_subscribed([self.event_topics.cost, self.event_topics.error])

    async def run(self, stop: asyncio.Event) -> None:
        await self.stream.run(stop)

    async def forward(self, record: Any) -> None:
        """Queue one cost record's tagged call with its experiment's others (one record per
        experiment and ``HANDLE_AT_ONCE`` calls); raises for a record that does not decode."""
        tagged = self._tagged(record)
        if tagged is None:
            return
        slice_key = (tagged.experiment_id, tagged.latency_ms is None)
        unsent = self._unsent.setdefault(slice_key, [])
        unsent.append(tagged)
        if len(unsent) >= HANDLE_AT_ONCE:
            gave_up = (tagged.experiment_id, True)
            if slice_key != gave_up and gave_up in self._unsent:
                await self._send(gave_up)  # the give-ups read before these answers go first
            await self._send(slice_key)

    async def flush(self) -> None:
        """Send what is queued (each experiment's give-ups before its answers: the analysis
        looks after every call, and a variant's answers alone must not decide it while its
        failures wait behind them), wait for the acknowledgements, record new task types."""
        for slice_key in sorted(self._unsent, key=lambda key: not key[1]):
            await self._send(slice_key)
        sends, self._sends = self._sends, []
        await asyncio.gather(*sends)
        if self._new_task_types:
            await self.repo.record_task_types(self._new_task_types)
            self._task_types |= self._new_task_types
            self._new_task_types = set()

    async def _send(self, slice_key: tuple[str, bool]) -> None:
        events = self._unsent.pop(slice_key)
        experiment_id = slice_key[0]
        self._sends.append(
            await self.producer.send(
                self.events_topic,
                encode_tagged(events),
                key=experiment_id.encode(),
                partition=partition_for(experiment_id, self.partitions),
                headers=[(ARMS_HEADER, encode_arms(events))],
            )
        )
        self.forwarded += len(events)

    def _tagged(self, record: Any) -> Tagged | None:
        # Every record is decoded, tagged or not: one that is not a call event is
        # dead-lettered, and only a call teaches a task type (an experiment on a task type no
        # agent reported is refused).
        try:
            decoded = self.event_topics.decode(record.topic, record.value)
        except (ValueError, TypeError):
            EVENTS.labels("invalid").inc()
            raise
        if isinstance(decoded, ErrorEvent):
            return self._gave_up(decoded)
        event = cast(LlmCallEvent, decoded)
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
            # not its variant's after a fallback (the SDK's self-healing call reports the
            # model that answered): the analysis counts those per variant
            arm=(data.provider, data.model),
        )

    def _gave_up(self, event: ErrorEvent) -> Tagged | None:
        """A failure of its variant, when the error is the one after which a call assigned to
        an experiment gave up (the SDK tags that one only); every other error is untagged.
        Nothing was paid for it (cost 0) and no answer came (no latency)."""
        tag = event.data.experiment
        if tag is None:
            EVENTS.labels("untagged").inc()
            return None
        EVENTS.labels("tagged").inc()
        return Tagged(
            event_id=str(event.id),
            experiment_id=tag.id,
            variant=tag.variant,
            cost_usd=0.0,
            success=False,
            latency_ms=None,
            quality=None,
        )
