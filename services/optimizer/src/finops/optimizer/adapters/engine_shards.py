"""Stage 2 of partitioned learning: one engine per owned partition of the internal topic.

Each worker of the owner group owns some partitions of ``finops.optimizer-events.v1`` and, per
partition, an :class:`~finops.optimizer.domain.engine.OptimizerEngine` that learns the task
types keyed there. The bookkeeping is :class:`~finops.common.owned_partitions.OwnedPartitions`:
each engine is checkpointed in its own row (``<checkpoint name>:p<partition>``, with the
position guard) with its partition's offset, restored by whoever owns the partition next, so a
rebalance or a ``kill -9`` neither loses nor double-counts an event. Operator changes arrive
in every partition, in order with the events (see
:mod:`finops.optimizer.service_layer.commands`); a partition's engine, once loaded, also takes
the settings ledger's changes it has not seen (those made with one worker since its
checkpoint), and later skips a change of a setting it holds a newer change of.

At most every ``snapshot_interval_s`` each changed engine's state, without its memories of
event ids, is published to the compacted ``finops.optimizer-shards.v1`` (key: the partition):
every replica's API answers from the latest of them (:mod:`.shard_snapshots`). Alerts go to
``finops.alerts.v1`` as they are raised, except budget alerts: a partition sees only its share
of a team's spend, so those are raised from the merged view instead, by the owner of
partition 0 (:data:`BUDGET_ALERTS_PARTITION`), whose checkpoint also holds the ids of the
budget alerts raised (:attr:`EngineShards.budget_alerts_raised`): they move with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore, serialize_in_parts
from finops.common.dead_letters import dead_letter, header_map
from finops.common.events import Event
from finops.common.id_dedupe import IdDedupe
from finops.common.metrics import export_stream_counts
from finops.common.owned_partitions import OwnedPartitions, Resume
from finops.optimizer.adapters.stream import (
    EVENTS,
    adopt,
    announcement_of,
    send_alert,
    taken,
)
from finops.optimizer.adapters.task_type_forward import (
    DECISION,
    EVENT,
    INPUT_HEADER,
    OPERATOR,
    source_of,
)
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.service_layer.commands import (
    OperatorChange,
    SettingsLedger,
    settle,
    take_from_ledger,
)

log = logging.getLogger(__name__)

OWNED = Gauge(
    "finops_optimizer_owned_partitions",
    "Partitions of finops.optimizer-events.v1 this worker owns and learns",
)
SNAPSHOTS = Counter(
    "finops_optimizer_snapshots_total",
    "Partition states of the learning published to finops.optimizer-shards.v1",
)
SNAPSHOT_FAILURES = Counter(
    "finops_optimizer_snapshot_failures_total",
    "Partition states of the learning the broker did not take (too large, say)",
)

#: the partition whose owner raises the fleet's budget alerts and checkpoints their ids
BUDGET_ALERTS_PARTITION = 0
#: the checkpoint part of :data:`BUDGET_ALERTS_PARTITION` holding the ids of those alerts
BUDGET_ALERTS_PART = "budget_alerts_raised"
#: how many budget alert ids are remembered: three per budget and period (two thresholds
#: and the forecast), so a day of 10,000 daily budgets at least
BUDGET_ALERT_IDS = 40_000


class EngineShards(OwnedPartitions[OptimizerEngine]):
    """The engines of the partitions this worker owns, checkpointed and published."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: PostgresCheckpointStore,
        *,
        topic: str,
        resume: Resume,
        name: str,
        new_engine: Any,
        shards_topic: str,
        alerts_topic: str,
        checkpoint_interval_s: float = 5.0,
        snapshot_interval_s: float = 1.0,
        ledger: SettingsLedger | None = None,
    ) -> None:
        super().__init__(
            consumer, topic, resume=resume, checkpoint_interval_s=checkpoint_interval_s
        )
        self.producer = producer
        # what this intake parks (it counts no processed records there)
        export_stream_counts("optimizer", [topic], ["dead_lettered"])
        self.store = store
        self.name = name
        self.new_engine = new_engine
        self.shards_topic = shards_topic
        self.alerts_topic = alerts_topic
        self.snapshot_interval_s = snapshot_interval_s
        #: the latest operator changes, taken by every engine loaded (None: none taken)
        self.ledger = ledger
        #: records applied by this worker since it started (not the engines' totals)
        self.events = 0
        self.unpublished: set[int] = set()
        #: fingerprints of the fleet's budget alerts raised, saved in the checkpoint of
        #: :data:`BUDGET_ALERTS_PARTITION` (meaningful while this worker owns it)
        self.budget_alerts_raised = IdDedupe(BUDGET_ALERT_IDS)
        self._last_snapshot = 0.0
        self._sends: list[asyncio.Future[Any]] = []

    def checkpoint_name(self, partition: int) -> str:
        return f"{self.name}:p{partition}"

    async def load_shard(
        self, partition: int
    ) -> tuple[OptimizerEngine, Mapping[str, int], str | None]:
        """The partition's engine as checkpointed (or new: :meth:`_new_engine_with_settings`),
        with the ledger's operator changes it has not seen applied."""
        engine, offsets, cluster_id = await self._restored(partition)
        await take_from_ledger(engine, self.ledger, partition=partition)
        return engine, offsets, cluster_id

    async def _restored(
        self, partition: int
    ) -> tuple[OptimizerEngine, Mapping[str, int], str | None]:
        saved = await self.store.load(self.checkpoint_name(partition))
        self.unpublished.add(partition)  # its new owner says it owns it
        if partition == BUDGET_ALERTS_PARTITION:
            self.budget_alerts_raised = IdDedupe(BUDGET_ALERT_IDS)
        if saved is not None:
            try:
                state = saved.state_dict()
                engine = OptimizerEngine.from_state(state)
                if partition == BUDGET_ALERTS_PARTITION and BUDGET_ALERTS_PART in state:
                    self.budget_alerts_raised = IdDedupe.from_state(state[BUDGET_ALERTS_PART])
                return engine, saved.offsets, saved.cluster_id
            except (KeyError, ValueError, TypeError) as exc:
                log.error(
                    "checkpoint unreadable; rebuilding the partition from the earliest offset",
                    extra={"partition": partition, "error": repr(exc)},
                )
        return await self._new_engine_with_settings(), {}, None

    async def _new_engine_with_settings(self) -> OptimizerEngine:
        """A new partition's engine, with the operator's settings of the one-worker engine
        this deployment ran before, if any (catalog, withdrawals, objectives, budgets: they
        are in no topic). What it learned is learned again from the topics: the forwarding
        group is new and reads them from their earliest offsets."""
        engine = self.new_engine()
        saved = await self.store.load(self.name)
        if saved is None:
            return engine
        try:
            before = OptimizerEngine.from_state(saved.state_dict())
        except (KeyError, ValueError, TypeError) as exc:
            log.error("the one-worker checkpoint is unreadable", extra={"error": repr(exc)})
            return engine
        for spec in before.catalog.values():
            engine.add_catalog_arm(spec)
        engine.withdrawn = set(before.withdrawn)
        for scope, objective in before.policy.objectives.items():
            engine.set_objective(scope, objective)
        for budget in before.budgets.budgets():
            engine.set_budget(budget)
        engine.operator_seq = dict(before.operator_seq)
        return engine

    async def save_shard(
        self, partition: int, shard: OptimizerEngine, offsets: dict[str, int]
    ) -> bool:
        await self._flush_sends()  # the alerts of the events this checkpoint covers
        parts = shard.state_parts()
        if partition == BUDGET_ALERTS_PARTITION:
            parts.append((BUDGET_ALERTS_PART, self.budget_alerts_raised.to_state))
        state = await serialize_in_parts(parts)
        position = self.offsets.get(partition)
        checkpoint = Checkpoint(state, offsets, shard.analytics.events, self.cluster_id)
        return await self.store.save_at(self.checkpoint_name(partition), checkpoint, position)

    async def adopt(self, partitions: set[int]) -> None:
        await super().adopt(partitions)
        OWNED.set(len(self.shards))

    def released(self, partition: int, shard: OptimizerEngine) -> None:
        self.unpublished.discard(partition)
        OWNED.set(len(self.shards))

    async def handle(self, partition: int, shard: OptimizerEngine, records: list[Any]) -> None:
        """Apply a turn's records of a partition (the event loop's turns between them are
        :meth:`~finops.common.owned_partitions.OwnedPartitions.run`'s); a record the engine
        fails on is dead-lettered."""
        for record in records:
            try:
                alerts = self._apply(shard, record)
            except Exception as exc:  # one bad record must not stop the partition: park it
                log.exception("engine failed on a record", extra={"partition": partition})
                await dead_letter(self.producer, record, exc, attempts=1, service="optimizer")
                continue
            self.events += 1
            for alert in alerts:
                await self._emit(alert)
        self.unpublished.add(partition)

    def _apply(self, engine: OptimizerEngine, record: Any) -> list[dict[str, Any]]:
        headers = header_map(record.headers)
        kind = headers.get(INPUT_HEADER, "").encode()
        if kind == EVENT:
            before = engine.tally
            alerts = engine.take(Event.from_kafka(record.value), source_of(headers))
            EVENTS.labels(record.topic, taken(before, engine)).inc()
            # a partition sees its share of a budget's spend: budget alerts come from the
            # merged view (see shard_snapshots), never from one partition
            return [a for a in alerts if a.get("kind") != "budget"]
        if kind == DECISION:
            EVENTS.labels(record.topic, adopt(engine, announcement_of(record.value))).inc()
            return []
        if kind == OPERATOR:  # skipped if the engine holds a newer change of that setting
            settle(engine, OperatorChange.from_json(record.value))
            return []
        raise ValueError(f"record without a known {INPUT_HEADER} header")

    async def _emit(self, alert: dict[str, Any]) -> None:
        self._sends.append(await send_alert(self.producer, self.alerts_topic, alert))

    async def _flush_sends(self) -> None:
        sends, self._sends = self._sends, []
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("an alert or a partition state was not published", exc_info=result)

    async def after_batch(self) -> None:
        await super().after_batch()
        if self.unpublished and time.monotonic() - self._last_snapshot >= self.snapshot_interval_s:
            await self.publish()

    async def publish(self) -> None:
        """Publish the state of every partition changed since it was last published."""
        self._last_snapshot = time.monotonic()
        for partition in sorted(self.unpublished & self.shards.keys()):
            engine = self.shards[partition]
            text = await serialize_in_parts(engine.view_parts())
            blob = await asyncio.to_thread(zlib.compress, text, 1)
            try:
                self._sends.append(
                    await self.producer.send(
                        self.shards_topic,
                        blob,
                        key=str(partition).encode(),
                        headers=[("x-events", str(engine.analytics.events).encode())],
                    )
                )
            except KafkaError as exc:  # too large, say: the next change publishes again
                SNAPSHOT_FAILURES.inc()
                log.error(
                    "partition state not published",
                    extra={"partition": partition, "bytes": len(blob), "error": repr(exc)},
                )
                continue
            SNAPSHOTS.inc()
        self.unpublished.clear()
