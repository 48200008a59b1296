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
order with the events) and answers from the view, and raises the budget alerts of the
merged budgets if it owns partition 0, remembering their ids in that partition's checkpoint
(:attr:`EngineShards.budget_alerts_raised
<finops.optimizer.adapters.engine_shards.EngineShards.budget_alerts_raised>`): the next
owner of partition 0 does not raise them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from finops.common.catch_up import CatchUp
from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.common.kafka import topic_partitions
from finops.common.lifespan import run_together
from finops.optimizer.adapters.engine_shards import BUDGET_ALERTS_PARTITION, EngineShards
from finops.optimizer.adapters.stream import send_alert
from finops.optimizer.adapters.task_type_forward import INPUT_HEADER, OPERATOR, TaskTypeForwarder
from finops.optimizer.domain.budget_alerts import label_id, limited_label_id, rearmed_id
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.fleet_view import FleetView
from finops.optimizer.service_layer.commands import OperatorChange, SettingsLedger

log = logging.getLogger(__name__)

VIEW_AGE = Gauge(
    "finops_optimizer_view_built_timestamp_seconds",
    "Unix time in seconds this replica last rebuilt the view it answers from",
)
UNREADABLE = Counter(
    "finops_optimizer_unreadable_snapshots_total",
    "Partition states this replica could not decode (its view keeps the previous one)",
)


@dataclass(frozen=True)
class QueuedAlert:
    """A budget alert sent, not yet acknowledged: the fingerprints of its id and of its
    :func:`~finops.optimizer.domain.budget_alerts.limited_label_id`, both raised once it is."""

    key: int
    label_key: int
    ack: asyncio.Future[Any]


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
        #: each partition's planning status as published (its engine later serves at the
        #: fleet price a view installs in it)
        self.published_status: dict[int, dict[str, Any]] = {}
        self.view = FleetView({}, partitions, blank())
        #: awaited with each new view (the budget alerts of the merged budgets)
        self.on_view: Callable[[FleetView], Awaitable[None]] | None = None
        self._changed = False
        self._last_build = 0.0
        #: the end of every partition at the start, and how far this reader has read
        self.catch_up: CatchUp | None = None
        #: whether a view was built from every state published before the start
        self.ready = False

    async def start(self) -> None:
        """Read every partition from its beginning; note where each ended at this moment."""
        await self.consumer.start()
        found = await topic_partitions(self.consumer, self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(found)]
        self.consumer.assign(tps)
        if not tps:  # never ready: no state would ever be read
            log.error("the topic of partition states does not exist", extra={"topic": self.topic})
            return
        # Exact on Apache Kafka; the local tansu broker answers the offset after the first
        # record of the last batch (see finops.common.log_position): the owners send one
        # state per partition and interval, so a batch holds one and the end is right too.
        ends = await self.consumer.end_offsets(tps)
        await self.consumer.seek_to_beginning(*tps)
        self.catch_up = CatchUp({tp.partition: offset for tp, offset in ends.items()})

    def unready_reason(self) -> str | None:
        """Why this replica must not answer yet (None: it may): it has not read every
        partition state published before it started, or not built a view from them."""
        if self.ready:
            return None
        if self.catch_up is None:
            return f"{self.topic} has no partitions to read (not created?)"
        behind = self.catch_up.behind()
        if behind:
            return (
                f"the view has not read {self.topic} up to where it ended at the start"
                f" (partitions {', '.join(map(str, behind))} behind)"
            )
        return "the view of every partition state is being built"

    async def _caught_up(self) -> bool:
        """Whether every partition is read up to its end at the start (positions updated)."""
        if self.catch_up is None:
            return False
        return not await self.catch_up.behind_now(self._position)

    async def _position(self, partition: int) -> int:
        return await self.consumer.position(TopicPartition(self.topic, partition))

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
                    engine = await asyncio.to_thread(_engine_of, blob)
                    self.latest[partition] = engine
                    self.published_status[partition] = engine.policy_status()
                    self._changed = True
                except (ValueError, KeyError, TypeError, zlib.error) as exc:
                    UNREADABLE.inc()
                    log.error("unreadable partition state", extra={"error": repr(exc)})
            caught_up = self.ready or await self._caught_up()
            due = self._changed and time.monotonic() - self._last_build >= self.rebuild_interval_s
            if due or (caught_up and not self.ready):
                await self.rebuild(caught_up=caught_up)
            await asyncio.sleep(0)  # getmany() does not suspend while records are buffered

    async def rebuild(self, *, caught_up: bool = False) -> None:
        """Build the view from the latest states (merging runs on a thread) and swap it in;
        ``caught_up``: they include every state published before the start (ready from now)."""
        self._changed = False
        self._last_build = time.monotonic()
        engines = dict(self.latest)
        self.view = await asyncio.to_thread(
            FleetView, engines, self.partitions, self.blank(), dict(self.published_status)
        )
        self.ready = self.ready or caught_up
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
        ledger: SettingsLedger | None = None,
    ) -> None:
        self.forwarder = forwarder
        #: where an operator change is recorded before it is written to the partitions
        self.ledger = ledger
        self.shards = shards
        self.reader = reader
        self.producer = producer
        self.learning_topic = learning_topic
        self.partitions = partitions
        self.alerts_topic = alerts_topic
        reader.on_view = self.raise_budget_alerts

    async def raise_budget_alerts(self, view: FleetView) -> None:
        """Raise the budget alerts due on the fleet's merged budgets, if this worker owns
        partition 0, and remember their ids in that partition's checkpointed state.

        The shards' lock is held throughout: partition 0 cannot be revoked between a raise
        and its record, so the checkpoint its next owner restores holds every id raised
        (after a ``kill -9``, those raised since the last checkpoint are raised again, under
        the same ``alert_id``)."""
        shards = self.shards
        if not self.reader.ready:  # a view without every partition's spend yet
            return
        async with shards.lock:
            if BUDGET_ALERTS_PARTITION not in shards.shards:
                return
            if self._rearm_quiet(view, shards.budget_alerts_raised):
                shards.dirty.add(BUDGET_ALERTS_PARTITION)
            sends = await self._queue_unraised(view, shards.budget_alerts_raised)
            # their acknowledgements awaited together: one round trip under the lock, not one
            # per alert
            acks = await asyncio.gather(*(s.ack for s in sends), return_exceptions=True)
            for sent, outcome in zip(sends, acks, strict=True):
                if isinstance(outcome, KafkaError):  # still due at the next view: raised then
                    log.error("budget alert not raised", extra={"error": repr(outcome)})
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    shards.budget_alerts_raised.add(sent.key)
                    shards.budget_alerts_raised.add(sent.label_key)
                    shards.dirty.add(BUDGET_ALERTS_PARTITION)

    @staticmethod
    def _rearm_quiet(view: FleetView, raised: IdDedupe) -> bool:
        """Note the alerts raised under an id with a limit whose condition does not hold
        under their budget's limit now (:func:`rearmed_id`): once due again they are raised
        again, under the id of that limit, as one worker does after a new limit put a
        threshold out of reach. Whether any was noted (the checkpoint then has something
        new)."""
        noted = False
        for quiet in view.budgets.quiet_alerts():
            mark = fingerprint(uuid.UUID(quiet.rearmed_id))
            limited = fingerprint(uuid.UUID(limited_label_id(quiet.label_id)))
            if limited in raised and mark not in raised:
                raised.add(mark)
                noted = True
        return noted

    async def _queue_unraised(self, view: FleetView, raised: IdDedupe) -> list[QueuedAlert]:
        """Queue the view's due alerts not raised yet, in order; one that cannot be queued
        stops the rest (due at the next view).

        An alert counts as raised when its id was; or when its budget, period and threshold
        were, whatever the limit, and it has not been seen quiet under this limit since
        (:meth:`_rearm_quiet`): a budget replaced with another limit raises again only what
        the new limit put out of reach and the spend then crossed. An alert raised under
        its :func:`label_id`, the id before limits were part of the ids, is not raised again
        in its period at all, as that version did not."""
        sends: list[QueuedAlert] = []
        for alert in view.budgets.due_alerts():
            key = fingerprint(uuid.UUID(alert.alert_id))
            label = label_id(alert)
            legacy = fingerprint(uuid.UUID(label))
            limited = fingerprint(uuid.UUID(limited_label_id(label)))
            rearmed = fingerprint(uuid.UUID(rearmed_id(label, float(alert.details["limit_usd"]))))
            if key in raised or legacy in raised or (limited in raised and rearmed not in raised):
                continue
            try:
                ack = await send_alert(self.producer, self.alerts_topic, alert.to_dict())
            except KafkaError as exc:
                log.error("budget alert not raised", extra={"error": repr(exc)})
                break
            sends.append(QueuedAlert(key, limited, ack))
        return sends

    @property
    def engine(self) -> FleetView:
        """The view the API answers from (replaced as the partitions publish)."""
        return self.reader.view

    def configured(self) -> FleetView:
        return self.reader.view

    async def apply(self, change: OperatorChange) -> Any:
        """Record ``change`` in the settings ledger (it follows a switch to one worker, and a
        partition loaded later takes it from there), write it with its number to every
        partition (acknowledged by the broker before this returns), and answer from this
        replica's view with the change applied."""
        if self.ledger is not None:
            change = change.numbered(await self.ledger.record(change))
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
        await run_together(self.forwarder.run(stop), self.shards.run(stop), self.reader.run(stop))
