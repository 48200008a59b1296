"""Replicated serving for partitioned learning: every replica answers for every task type.

:class:`ShardSnapshotReader` reads every partition of the compacted
``finops.optimizer-shards.v1`` from its earliest offset (no consumer group: each replica reads
all of it) and keeps the latest engine state of each learning partition; at most every
``rebuild_interval_s`` it builds a new :class:`~finops.optimizer.domain.fleet_view.FleetView`
from them, on a thread, and swaps it in. The API answers from the current view, at most about
a second behind the owners (their publishing interval plus this one).

:class:`PartitionedLearning` puts the stages of one worker together for the API: the view it
answers from, and the :class:`~finops.optimizer.service_layer.commands.ChangeTarget` that
writes an operator change to every partition of the internal topic (each owner applies it in
order with the events) and answers from the view.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.stream import send_alert
from finops.optimizer.adapters.task_type_forward import INPUT_HEADER, OPERATOR, TaskTypeForwarder
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.fleet_view import FleetView
from finops.optimizer.service_layer.commands import OperatorChange

log = logging.getLogger(__name__)

VIEW_AGE = Gauge(
    "finops_optimizer_view_built_timestamp_seconds", "When this replica's view was last built"
)
UNREADABLE = Counter("finops_optimizer_unreadable_snapshots_total", "Snapshots not understood")


class ShardSnapshotReader:
    """The latest state of every learning partition, and the view built from them."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        *,
        partitions: int,
        blank: Callable[[], OptimizerEngine],
        rebuild_interval_s: float = 0.5,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.partitions = partitions
        self.blank = blank
        self.rebuild_interval_s = rebuild_interval_s
        self.latest: dict[int, OptimizerEngine] = {}
        self.view = FleetView({}, partitions, blank())
        #: awaited with each new view (the budget alerts of the merged budgets)
        self.on_view: Callable[[FleetView], Awaitable[None]] | None = None
        self._changed = False
        self._last_build = 0.0

    async def start(self) -> None:
        await self.consumer.start()
        found = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(found)]
        self.consumer.assign(tps)
        if tps:
            await self.consumer.seek_to_beginning(*tps)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=100)
            newest: dict[int, bytes] = {}
            for records in batch.values():
                for record in records:
                    if record.value is not None and record.key is not None:
                        newest[int(record.key)] = record.value
            for partition, blob in newest.items():
                try:
                    self.latest[partition] = await asyncio.to_thread(_engine_of, blob)
                    self._changed = True
                except (ValueError, KeyError, TypeError, zlib.error) as exc:
                    UNREADABLE.inc()
                    log.error("unreadable partition state", extra={"error": repr(exc)})
            if self._changed and time.monotonic() - self._last_build >= self.rebuild_interval_s:
                await self.rebuild()
            await asyncio.sleep(0)  # getmany() does not suspend while records are buffered

    async def rebuild(self) -> None:
        """Build the view from the latest states (merging runs on a thread) and swap it in."""
        self._changed = False
        self._last_build = time.monotonic()
        engines = dict(self.latest)
        self.view = await asyncio.to_thread(FleetView, engines, self.partitions, self.blank())
        VIEW_AGE.set_to_current_time()
        if self.on_view is not None:
            await self.on_view(self.view)

    async def stop(self) -> None:
        await self.consumer.stop()


def _engine_of(blob: bytes) -> OptimizerEngine:
    return OptimizerEngine.from_state(json.loads(zlib.decompress(blob)))


class PartitionedLearning:
    """One worker of partitioned learning, as its API sees it."""

    def __init__(
        self,
        forwarder: TaskTypeForwarder,
        shards: EngineShards,
        reader: ShardSnapshotReader,
        producer: AIOKafkaProducer,
        *,
        learning_topic: str,
        partitions: int,
        alerts_topic: str,
    ) -> None:
        self.forwarder = forwarder
        self.shards = shards
        self.reader = reader
        self.producer = producer
        self.learning_topic = learning_topic
        self.partitions = partitions
        self.alerts_topic = alerts_topic
        #: ids of the budget alerts this worker has raised (they are deterministic)
        self.budget_alerts_raised: set[str] = set()
        reader.on_view = self.raise_budget_alerts

    async def raise_budget_alerts(self, view: FleetView) -> None:
        """Raise the budget alerts due on the fleet's merged budgets, if this worker owns
        partition 0 (one worker raises them; after partition 0 moves, its next owner may
        raise one again under the same ``alert_id``)."""
        if 0 not in self.shards.shards:
            return
        for alert in view.budgets.due_alerts(emitted=self.budget_alerts_raised):
            try:
                sent = await send_alert(self.producer, self.alerts_topic, alert.to_dict())
                await sent
            except KafkaError as exc:  # still due at the next view: raised then
                log.error("budget alert not raised", extra={"error": repr(exc)})
                return
            self.budget_alerts_raised.add(alert.alert_id)

    @property
    def engine(self) -> FleetView:
        """The view the API answers from (replaced as the partitions publish)."""
        return self.reader.view

    def configured(self) -> FleetView:
        return self.reader.view

    async def apply(self, change: OperatorChange) -> Any:
        """Write ``change`` to every partition (acknowledged by the broker before this
        returns: durable), and answer from this replica's view with the change applied."""
        sends = [
            await self.producer.send(
                self.learning_topic,
                change.to_json(),
                key=b"operator",
                partition=partition,
                headers=[(INPUT_HEADER, OPERATOR)],
            )
            for partition in range(self.partitions)
        ]
        await asyncio.gather(*sends)
        return change.apply(self.reader.view)

    def ownership(self) -> dict[str, Any]:
        """What this worker owns and how fresh its view is (``GET /api/partitions``)."""
        view = self.reader.view
        return {
            "partitions": self.partitions,
            "owned": sorted(self.shards.shards),
            "published": sorted(self.reader.latest),
            "viewed": sorted(view.engines),
            "events_applied": self.shards.events,
        }

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.forwarder.run(stop), self.shards.run(stop), self.reader.run(stop))
