"""Stage 1 of partitioned learning: the optimizer's input re-keyed by task type.

Every worker reads its share of ``agent.cost.v1``, ``agent.error.v1`` (keyed by agent) and
``finops.experiments.v1`` (keyed by experiment) in the forwarding group, and writes each record
unchanged to ``finops.optimizer-events.v1`` in the partition of its task type, with a header
saying what it is (:data:`INPUT_HEADER`): all of a task type's events reach one partition,
whose owner learns it (stage 2, :mod:`.engine_shards`); a task type's partition is its
family's (:func:`~finops.optimizer.domain.fleet_view.partition_of_task`). A record that does
not decode is parked on its topic's dead-letter topic; an experiment announcement other
than a decision is counted and not forwarded (it changes nothing the optimizer learns). The
stage is an :class:`~finops.common.consumer.AtLeastOnceConsumer`: offsets are committed once
a batch's forwarded records are acknowledged (at least once; the owner drops an event id it
has counted).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from finops.common.consumer import AtLeastOnceConsumer
from finops.common.events import EventTopics
from finops.common.partitions import HANDLE_AT_ONCE
from finops.optimizer.adapters.stream import announcement_of
from finops.optimizer.domain.fleet_view import partition_of_task

#: what a record on the internal topic is: an event, an experiment's decision, an operator change
INPUT_HEADER = "x-optimizer-input"
#: where a forwarded event was read: ``topic:partition:offset`` of its input topic, so the owner
#: tells the same record forwarded again (after a forwarder's restart or rebalance: at least
#: once) from an event an agent sent again (see :func:`source_of`)
SOURCE_HEADER = "x-optimizer-source"
EVENT, DECISION, OPERATOR = b"event", b"decision", b"operator"

FORWARDED = Counter(
    "finops_optimizer_forwarded_total",
    "Records the forwarding stage read, by input (event or decision) and outcome (forwarded"
    " by task type onto finops.optimizer-events.v1, invalid, not_a_decision)",
    ["input", "outcome"],
)


class TaskTypeForwarder:
    """Re-keys the optimizer's input topics by task type onto ``learning_topic``."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        *,
        learning_topic: str,
        partitions: int,
        experiments_topic: str | None,
        events: EventTopics | None = None,
    ) -> None:
        self.producer = producer
        self.learning_topic = learning_topic
        self.partitions = partitions
        self.experiments_topic = experiments_topic
        #: the event topics, each decoded by the event type it carries
        self.event_topics = events or EventTopics()
        self.forwarded = 0
        self._sends: list[asyncio.Future[Any]] = []
        # One try: a record that does not decode will not decode on a second one.
        self.stream = AtLeastOnceConsumer(
            consumer,
            producer,
            self.forward,
            service="optimizer",
            max_attempts=1,
            records_per_turn=HANDLE_AT_ONCE,
            flush=self.flush,
        )

    async def start(self, topics: list[str]) -> None:
        """Start the consumer; its group join runs in the background."""
        await self.stream.start_subscribed(topics)

    async def run(self, stop: asyncio.Event) -> None:
        await self.stream.run(stop)

    async def forward(self, record: Any) -> None:
        """Send one record to its task type's partition; raises for one that does not
        decode (it is parked)."""
        if record.topic == self.experiments_topic:
            kind, task_type = DECISION, _decision_task_type(record.value)
            if task_type is None:
                FORWARDED.labels("decision", "not_a_decision").inc()
                return
        else:
            kind = EVENT
            try:
                task_type = self.event_topics.decode(record.topic, record.value).data.task_type
            except (ValueError, TypeError):
                FORWARDED.labels("event", "invalid").inc()
                raise
        self._sends.append(
            await self.producer.send(
                self.learning_topic,
                record.value,
                key=task_type.encode(),
                partition=partition_of_task(task_type, self.partitions),
                headers=[
                    *(record.headers or ()),
                    (INPUT_HEADER, kind),
                    (SOURCE_HEADER, f"{record.topic}:{record.partition}:{record.offset}".encode()),
                ],
            )
        )
        self.forwarded += 1
        FORWARDED.labels(kind.decode(), "forwarded").inc()

    async def flush(self) -> None:
        """Wait for the acknowledgements of what was sent (before offsets are committed)."""
        sends, self._sends = self._sends, []
        await asyncio.gather(*sends)


def source_of(headers: dict[str, str]) -> tuple[str, int] | None:
    """``("topic:partition", offset)`` of :data:`SOURCE_HEADER` among a record's headers;
    None without one (forwarded by a version before it) or for one that does not parse.

    >>> source_of({SOURCE_HEADER: "agent.cost.v1:2:1234"})
    ('agent.cost.v1:2', 1234)
    >>> source_of({}) is None, source_of({SOURCE_HEADER: "agent.cost.v1"}) is None
    (True, True)
    """
    partition, _, offset = headers.get(SOURCE_HEADER, "").rpartition(":")
    if not partition or not offset.isdigit():
        return None
    return partition, int(offset)


def _decision_task_type(raw: bytes) -> str | None:
    """The task type of an experiment's decision; None for another announcement.
    ValueError for one that is not a JSON object."""
    body = announcement_of(raw)
    task_type = body.get("task_type")
    if body.get("kind") != "decision" or not isinstance(task_type, str) or not task_type:
        return None
    return task_type
