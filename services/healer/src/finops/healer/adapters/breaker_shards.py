"""Stage 2 of the circuit breakers: the breakers of the outcome partitions this instance owns.

Outcomes arrive on ``finops.provider-outcomes.v1`` in the partition of their provider/model
(stage 1, :mod:`.circuits_stream`). Each instance of the owner group owns some partitions and,
per partition, a :class:`BreakerShard`: the breakers keyed there and the outcome ids they
counted. :class:`~finops.common.owned_partitions.OwnedPartitions` does the bookkeeping, as for
the optimizer's learning and the experiments' analysis: each shard is checkpointed in its own
row of ``healer_checkpoints`` (``<name>:p<partition>``, with the position guard) with its
partition's offset; offsets are committed only after the checkpoint that covers them; the next
owner of a partition (after a rebalance, a restart or a ``kill -9``) restores the checkpoint
and replays exactly the outcomes after it. So a breaker's counts neither lose an outcome nor
count one twice (a redelivered outcome is dropped by its event id).

After every batch the states of the breakers it changed are published to the compacted
``finops.circuits.v1``, and an alert to ``finops.alerts.v1`` for each opening and closing,
*before* the checkpoint (any checkpoint: a rebalance's may come between two turns of a batch):
a crash in between replays the batch and publishes them again (at least once; an alert's id is
a function of the transition, so a repeat is recognisable).

Every ``republish_interval_s`` the owner also publishes the state of every breaker it owns,
changed or not. A deposed owner that has not yet noticed its partition moved (a rebalance it
has not completed, a long pause) may publish a state after the new owner's, one that misses
the outcomes the new owner counted since; readers keep the newest state by ``updated_at`` and
take the later of two equal ones, and a breaker's outcomes arrive out of time order, so that
stale state could otherwise stay the last word (on the compacted topic too) until the
breaker's next outcome. The republish bounds how long it lasts.

A partition with no checkpoint is read from its beginning; on the first start after an
upgrade from the version that kept no checkpoints, it resumes from the group's committed
offset instead, its breakers starting from their published states, as that version did. Those
are adopted at once: the owner waits (at most ``adopt_wait_s``) until its circuits view has
read ``finops.circuits.v1`` up to its end, takes every published breaker keyed to the
partition and checkpoints them, so an open breaker no outcome reaches is still half-opened on
time, here and by the partition's later owners. When the view does not get there in time, a
breaker adopts its published state when its next outcome arrives, and the adoption is tried
again (with the same bound) before each checkpoint of the partition until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from finops.common.broker_outage import BrokerOutage, Outgoing, publish_acknowledged
from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore
from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.dead_letters import dead_letter
from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.common.lifespan import run_together
from finops.common.log_position import partition_key
from finops.common.metrics import counter_by, export_stream_counts
from finops.common.owned_partitions import OwnedPartitions, Resume
from finops.common.partitions import partition_for
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.adapters.circuits import ProviderOutcome, breaker_alert, report_held_back
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breaker_state import board_from_state, board_to_state
from finops.healer.domain.breakers import BreakerConfig, Transition

log = logging.getLogger(__name__)

UPDATES = Counter(
    "finops_healer_breaker_updates_total",
    "Call outcomes counted in the breakers this instance owns",
)
DUPLICATES = Counter(
    "finops_healer_breaker_duplicates_total",
    "Call outcomes dropped because their event was counted already (forwarded twice)",
)
#: every state at 0 from the start: an ``open`` series that appeared with the first opening
#: would hold 1 from its first sample, and ``increase()`` (the alert FinopsBreakerOpened)
#: would miss it
TRANSITIONS = counter_by(
    "finops_healer_breaker_transitions_total",
    "State changes of the breakers this instance owns, by the state entered",
    "state",
    [status.value for status in CircuitStatus],
)
REPUBLISHED = Counter(
    "finops_healer_breaker_republished_total",
    "Breaker states published again unchanged, every FINOPS_BREAKER_REPUBLISH_INTERVAL_S",
)
OWNED = Gauge(
    "finops_healer_owned_partitions",
    "Partitions of finops.provider-outcomes.v1 this instance owns (whose breakers it keeps)",
)


class PublishedCircuits(Protocol):
    """What ``finops.circuits.v1`` says: a
    :class:`~finops.healer.adapters.circuits.CircuitsView`."""

    def get(self, provider: str, model: str) -> CircuitState | None:
        """A breaker's last published state."""
        ...

    def all(self) -> list[CircuitState]:
        """Every breaker's last published state."""
        ...

    async def read_to_now(self, timeout_s: float) -> bool:
        """Wait until every state published before the call is read; False on timeout."""
        ...


@dataclass
class BreakerShard:
    """The breakers of one outcome partition and the event ids of the outcomes they counted."""

    board: BreakerBoard
    seen: IdDedupe
    #: outcomes counted into this shard by this instance
    applied: int = 0
    #: transitions not published yet (their alerts): published after the batch, at the next
    #: tick or before any checkpoint of the partition, whichever comes first
    transitions: list[Transition] = field(default_factory=list)
    #: an upgraded partition whose published breakers are not adopted yet (the circuits
    #: topic was not read in time): tried again before each checkpoint
    unadopted: bool = False

    def count(self, outcome: ProviderOutcome) -> None:
        """Count one outcome in its breaker, once per event id."""
        # parsed first: an outcome of an unknown kind is dead-lettered, never counted
        kind = ErrorKind(outcome.kind or ErrorKind.UNKNOWN) if outcome.failed else None
        if not self.seen.add(fingerprint(uuid.UUID(outcome.event_id))):
            DUPLICATES.inc()
            return
        self.applied += 1
        UPDATES.inc()
        provider, model, at, agent = outcome.provider, outcome.model, outcome.at, outcome.agent
        if kind is not None:
            transition = self.board.failure(provider, model, kind, at=at, agent=agent)
        else:
            transition = self.board.success(provider, model, at=at, agent=agent)
        if transition is not None:
            self.transitions.append(transition)
        if self.board.held_back is not None:
            report_held_back(self.board.held_back)

    def to_state(self) -> dict[str, Any]:
        return {"board": board_to_state(self.board), "seen": self.seen.to_state()}


class BreakerShards(OwnedPartitions[BreakerShard]):
    """The breakers of the outcome partitions this instance owns, checkpointed and published.

    ``published`` is what the circuits topic says, for a partition without a checkpoint (see
    the module's docstring); ``adopt_wait_s`` bounds the wait for it to be read.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: PostgresCheckpointStore,
        *,
        config: BreakerConfig,
        topic: str,
        resume: Resume,
        name: str,
        circuits_topic: str,
        alerts_topic: str,
        published: PublishedCircuits,
        outage: BrokerOutage | None = None,
        adopt_wait_s: float = 5.0,
        dedupe_ids: int = 65_536,
        checkpoint_interval_s: float = 5.0,
        tick_interval_s: float = 1.0,
        republish_interval_s: float = 10.0,
    ) -> None:
        super().__init__(
            consumer, topic, resume=resume, checkpoint_interval_s=checkpoint_interval_s
        )
        self.producer = producer
        # what this intake parks (it counts no processed records there)
        export_stream_counts("healer", [topic], ["dead_lettered"])
        self.store = store
        self.config = config
        self.name = name
        self.circuits_topic = circuits_topic
        self.alerts_topic = alerts_topic
        self.published = published
        #: the instance's wait for a broker that does not take records (see publish)
        self.outage = outage or BrokerOutage(tolerance_s=60.0, ack_wait_s=5.0)
        self.adopt_wait_s = adopt_wait_s
        #: whether the circuits topic was read to its end for the adoption or checkpoint under
        #: way (asked once, when its first upgraded partition needs it)
        self._circuits_read: bool | None = None
        self.dedupe_ids = dedupe_ids
        self.tick_interval_s = tick_interval_s
        self.republish_interval_s = republish_interval_s
        self._last_republish = time.monotonic()
        #: outcomes counted by this instance since it started, in shards it may have released
        self.outcomes_applied = 0

    def checkpoint_name(self, partition: int) -> str:
        return f"{self.name}:p{partition}"

    def new_shard(self, board: BreakerBoard | None = None) -> BreakerShard:
        return BreakerShard(board or BreakerBoard(self.config), IdDedupe(self.dedupe_ids))

    async def load_shard(
        self, partition: int
    ) -> tuple[BreakerShard, Mapping[str, int], str | None]:
        saved = await self.store.load(self.checkpoint_name(partition))
        if saved is not None:
            try:
                state = saved.state_dict()
                shard = BreakerShard(
                    board_from_state(state["board"], self.config),
                    # a changed FINOPS_BREAKER_DEDUPE_IDS applies to restored partitions too
                    IdDedupe.from_state(state["seen"]).resized(self.dedupe_ids),
                )
                return shard, saved.offsets, saved.cluster_id
            except (KeyError, ValueError, TypeError) as exc:
                log.error(
                    "breaker checkpoint unreadable; resuming from the committed offset",
                    extra={"partition": partition, "error": repr(exc)},
                )
        return await self._from_published(partition)

    async def _from_published(
        self, partition: int
    ) -> tuple[BreakerShard, Mapping[str, int], str | None]:
        """A partition without a checkpoint. Offsets are committed only after a checkpoint,
        so a committed offset without one was left by the version that kept none: its
        breakers adopt their published states and it resumes from there. Otherwise the
        partition is new and read from its beginning."""
        tp = TopicPartition(self.topic, partition)
        committed = await self.consumer.committed(tp)
        if committed is None:
            return self.new_shard(), {}, None
        shard = self.new_shard(BreakerBoard(self.config, published=self.published.get))
        shard.unadopted = not await self._adopt_published(partition, shard.board)
        if not shard.unadopted:
            self.dirty.add(partition)  # checkpointed soon, with the breakers no outcome reaches
        return shard, {partition_key(tp): committed}, None

    async def _adopt_published(self, partition: int, board: BreakerBoard) -> bool:
        """Put every published breaker keyed to ``partition`` into ``board`` once the circuits
        topic is read up to its end; False (each adopts its state lazily, when its next
        outcome arrives) when it was not read in time."""
        partitions = len(self.consumer.partitions_for_topic(self.topic) or ())
        if self._circuits_read is None:
            self._circuits_read = await self.published.read_to_now(self.adopt_wait_s)
        if not partitions or not self._circuits_read:
            log.warning(
                "circuits topic not read in time: until a checkpoint finds it read, breakers"
                " adopt their published states when their next outcome arrives",
                extra={"partition": partition, "wait_s": self.adopt_wait_s},
            )
            return False
        # outcomes are keyed by their breaker's key, with the producer's default partitioner
        for state in self.published.all():
            if partition_for(state.key, partitions) == partition:
                board.breaker(state.provider, state.model)
        return True

    async def save_shard(
        self, partition: int, shard: BreakerShard, offsets: dict[str, int]
    ) -> bool:
        if shard.unadopted:  # the view may have read the circuits topic since
            shard.unadopted = not await self._adopt_published(partition, shard.board)
        return await self.store.save_at(
            self.checkpoint_name(partition),
            Checkpoint(shard.to_state(), offsets, shard.applied, self.cluster_id),
            self.offsets.get(partition),
        )

    async def adopt(self, partitions: set[int]) -> None:
        self._circuits_read = None
        await super().adopt(partitions)
        OWNED.set(len(self.shards))

    async def checkpoint_locked(self) -> None:
        """Publish what is not published yet, then checkpoint. A rebalance may checkpoint a
        partition between two turns of a poll, before :meth:`after_batch` publishes them:
        published only after, its transitions would be saved yet never announced (the next
        owner replays from the checkpoint, past them)."""
        self._circuits_read = None
        await self.publish()
        await super().checkpoint_locked()

    def released(self, partition: int, shard: BreakerShard) -> None:
        OWNED.set(len(self.shards))

    async def handle(self, partition: int, shard: BreakerShard, records: list[Any]) -> None:
        """Count a partition's outcomes; a record that is not one is dead-lettered."""
        for record in records:
            try:
                outcome = ProviderOutcome.from_json(record.value)
                applied = shard.applied
                shard.count(outcome)
            except (ValueError, KeyError, TypeError) as exc:
                await dead_letter(self.producer, record, exc, attempts=1, service="healer")
                continue
            self.outcomes_applied += shard.applied - applied

    async def after_batch(self) -> None:
        """Publish what the batch changed, then checkpoint when one is due."""
        await self.publish()
        await super().after_batch()

    async def publish(self) -> None:
        """Every changed breaker's state and the alerts of the transitions, acknowledged.

        A broker that does not take them is waited for (:mod:`finops.common.broker_outage`):
        only what it refused is sent again, with backoff; past the outage tolerance, or on an
        error sending again cannot fix, this raises and the process ends, to restart from the
        last checkpoint. What it drained is put back first: a checkpoint after it (a
        rebalance's) publishes them before saving, or is not taken."""
        records = []
        drained: list[tuple[BreakerShard, list[CircuitState], list[Transition]]] = []
        for partition, shard in self.shards.items():
            transitions, shard.transitions = shard.transitions, []
            states = shard.board.drain_changed()
            drained.append((shard, states, transitions))
            if states:
                self.dirty.add(partition)
            for state in states:
                records.append(Outgoing(self.circuits_topic, state.to_json(), state.key.encode()))
            for transition in transitions:
                alert = breaker_alert(transition)
                if alert is not None:
                    records.append(
                        Outgoing(
                            self.alerts_topic,
                            json.dumps(alert.to_dict(), default=str).encode(),
                            alert.subject.encode(),
                        )
                    )
        try:
            await publish_acknowledged(self.producer, records, self.outage, what="breaker states")
        except BaseException:
            # Not published (the loop ends with the error): put back, so that a checkpoint
            # after this (a rebalance's release) publishes them first or is not taken at all;
            # saved unpublished, the transitions' alerts would never be sent.
            for shard, states, transitions in drained:
                shard.board.unpublished(states)
                shard.transitions[:0] = transitions
            raise
        for _shard, _states, transitions in drained:
            for transition in transitions:
                TRANSITIONS.labels(transition.after.value).inc()

    async def republish(self) -> None:
        """Every owned breaker's state, changed or not, acknowledged (see the module's
        docstring: it overwrites what a deposed owner published late)."""
        records = [
            Outgoing(self.circuits_topic, state.to_json(), state.key.encode())
            for shard in self.shards.values()
            for state in shard.board.snapshots()
        ]
        await publish_acknowledged(self.producer, records, self.outage, what="breaker states")
        REPUBLISHED.inc(len(records))
        self._last_republish = time.monotonic()

    async def tick(self, now: float) -> None:
        """Half-open every owned breaker whose cool-down is over, and publish it; publish
        every owned breaker once ``republish_interval_s`` has passed since the last time."""
        async with self.lock:
            for shard in self.shards.values():
                shard.transitions += shard.board.tick(now)
            await self.publish()
            if time.monotonic() - self._last_republish >= self.republish_interval_s:
                await self.republish()

    async def run(self, stop: asyncio.Event) -> None:
        """Count and publish until ``stop``; half-open cooled-down breakers meanwhile."""

        async def ticks() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_interval_s)
                await self.tick(time.time())

        await run_together(super().run(stop), ticks())
