"""Stage 2 of the analysis: the experiments of the partitions this instance owns.

Tagged events arrive on ``finops.experiment-events.v1`` in the partition of their experiment
id (stage 1, :mod:`.forward`). Each instance of the owner group owns some partitions and, per
partition, an :class:`ExperimentAnalysis` of that partition's experiments, checkpointed in its
own row with that partition's offset (see :mod:`.checkpoints`), together with the snapshots
any instance serves results from. :class:`~finops.common.owned_partitions.OwnedPartitions`
does the rest: offsets are committed only after the checkpoint that covers them; when a
partition is assigned its checkpoint is loaded and the consumer seeks to its offset, and
before one is revoked it is checkpointed: a restart or a rebalance neither loses nor
double-counts an event.

A conclusion is recorded in PostgreSQL *before* any checkpoint that holds it is saved: after
the batch that reached it, or sooner, when a rebalance checkpoints the partition between two
turns of a poll. PostgreSQL decides: it takes the first decision for a running experiment and
refuses any other, and the decision is announced on ``finops.experiments.v1`` from its audit
row (the outbox, as an operator's start or stop), with what was recorded. When PostgreSQL does
not take it, no checkpoint is saved: the next owner (or the intake started again) replays from
the last one and reaches a conclusion again. A replay after a crash between the record and the
checkpoint may reach another one (its batches split differently, or the clock past
``max_duration_s`` before the deciding event): PostgreSQL refuses it, and the shard takes the
decision recorded in its place (:meth:`ExperimentAnalysis.settle`), so its checkpoint, its
results and every announcement hold the same decision, announced at least once (again, the
same, after a crash between the send and its mark). An operator's stop recorded first stands
the same way: the shard holds it as a stop, and no decision of the analysis is announced. When
no checkpoint held the experiment (its calls and its decision came after the last one), the
replay meets it decided: the shard tracks it again, counts its calls up to the decision's
counts and holds the decision recorded (:meth:`ExperimentAnalysis.track_recorded`), so its
results are not zeros (a replay whose log no longer holds all the calls the decision counted
holds the decision once it has read the log to its end,
:meth:`AnalysisIntake._end_replays_at_log_end`). An operator's stop is the same: when a
refresh sees it, the shard halts the experiment and its counts are recorded
(``stop_counts``) before any checkpoint that holds the stop, and a replay counts its calls up
to them; a replay after a crash before they were recorded counts its calls until its first
refresh halts it, and records those.

An operator's start or stop is announced from its audit row (the outbox,
:meth:`.ExperimentRepository.unannounced`) as soon as the API asks
(:meth:`AnalysisIntake.announce_soon`) and at every refresh, so one the broker (or PostgreSQL)
did not take is announced when it is back, by this instance or another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from finops.common.checkpoints import Checkpoint
from finops.common.datastores import is_dependency_failure
from finops.common.dead_letters import dead_letter
from finops.common.lifespan import run_together
from finops.common.metrics import counter_by, export_stream_counts
from finops.common.owned_partitions import OwnedPartitions, Resume
from finops.common.partitions import partition_for
from finops.experiments.adapters.checkpoints import PostgresCheckpointStore
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.adapters.repository import (
    ANNOUNCEMENT_KINDS,
    Experiment,
    ExperimentRepository,
)
from finops.experiments.domain.analysis import DROP_REASONS, ExperimentAnalysis
from finops.experiments.domain.conclusions import (
    OPERATOR_STOP,
    is_operator_stop,
    recorded_decision,
    stop_record,
)
from finops.experiments.domain.definition import ExperimentNotFound
from finops.experiments.domain.experiment_state import ExperimentState
from finops.experiments.domain.tagged import ARMS_HEADER, Tagged, decode_tagged

log = logging.getLogger(__name__)

ANNOUNCED = counter_by(
    "finops_experiments_announcements_total",
    "Announcements this instance wrote to finops.experiments.v1, by kind",
    "kind",
    ANNOUNCEMENT_KINDS,
)
ANNOUNCE_FAILURES = Counter(
    "finops_experiments_announce_failures_total",
    "Attempts to announce operators' starts and stops that failed on the broker or PostgreSQL "
    "(retried at the next refresh)",
)
DROPPED = counter_by(
    "finops_experiments_events_dropped_total",
    "Tagged events the analysis did not count, by reason",
    "reason",
    DROP_REASONS,
)
NEGATIVE_CACHE_S = 1.0


class AnalysisIntake(OwnedPartitions[ExperimentAnalysis]):
    """The :class:`ExperimentAnalysis` of each partition this instance owns (the loop, the
    rebalances and the checkpoint bookkeeping are :class:`OwnedPartitions`')."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: PostgresCheckpointStore,
        repo: ExperimentRepository,
        *,
        name: str,
        events_topic: str,
        experiments_topic: str,
        partitions: int,
        resume: Resume,
        forwarder: TaggedForwarder | None = None,
        checkpoint_interval_s: float = 5.0,
        refresh_interval_s: float = 1.0,
    ) -> None:
        super().__init__(
            consumer, events_topic, resume=resume, checkpoint_interval_s=checkpoint_interval_s
        )
        self.producer = producer
        # what this intake parks (it counts no processed records there)
        export_stream_counts("experiments", [events_topic], ["dead_lettered"])
        self.store = store
        self.repo = repo
        self.name = name
        self.experiments_topic = experiments_topic
        self.partitions = partitions
        self.forwarder = forwarder
        self.refresh_interval_s = refresh_interval_s
        #: tagged events analysed by this instance since it started
        self.events = 0
        #: conclusions not recorded yet, by partition: recorded in PostgreSQL before any
        #: checkpoint (see :meth:`checkpoint_locked`)
        self.unrecorded: dict[int, list[dict[str, Any]]] = {}
        self._last_refresh = 0.0
        #: partitions were adopted: follow the operators before counting their calls
        self._follow_first = False
        #: follow the operators after this batch, before any checkpoint, whatever the interval
        self._refresh_soon = False
        self._not_running: dict[str, float] = {}
        #: the end of its partition's log noted once an experiment began to follow a recorded
        #: decision's counts: read up to there, the replay holds every call it can still count
        self._replay_ends: dict[str, int] = {}
        #: the next offset of each partition short of a replay's end at the last batch: its
        #: log's start is asked only once it has not moved since (see _read_up_to)
        self._short_at: dict[int, int] = {}
        #: every experiment as of the last refresh (at most ``refresh_interval_s`` old), for
        #: the assignment API; a status other than running is always re-read from PostgreSQL
        self.known: dict[str, Experiment] = {}
        self._announce_now = asyncio.Event()

    # -- ownership -------------------------------------------------------------------------

    def checkpoint_name(self, partition: int) -> str:
        return f"{self.name}:{partition}"

    def owner_partition(self, experiment_id: str) -> int:
        return partition_for(experiment_id, self.partitions)

    async def adopt(self, partitions: set[int]) -> None:
        await super().adopt(partitions)
        self._follow_first = True
        self._refresh_soon = True  # track the running experiments of the new partitions now

    async def load_shard(
        self, partition: int
    ) -> tuple[ExperimentAnalysis, dict[str, int], str | None]:
        """The partition's checkpoint; without one, its part of the legacy single checkpoint
        (read from the partition's beginning); an unreadable one is rebuilt from there."""
        checkpoint = await self.store.load(self.checkpoint_name(partition))
        if checkpoint is None:
            legacy = await self._from_single_checkpoint(partition)
            return legacy or ExperimentAnalysis(), {}, None
        analysis = self._restored(partition, checkpoint)
        if analysis is None:
            return ExperimentAnalysis(), {}, None
        return analysis, checkpoint.offsets, checkpoint.cluster_id

    async def _from_single_checkpoint(self, partition: int) -> ExperimentAnalysis | None:
        """The partition's experiments from the checkpoint of the analysis before it was
        split by partition (one row named ``name``), if there is one.

        Its offsets were agent.cost.v1's: the forwarding stage resumes that topic from the
        group's committed offsets, never past the old checkpoint, and the events it forwards
        again are dropped by their ids.
        """
        legacy = await self.store.load(self.name)
        whole = self._restored(partition, legacy)
        if whole is None:
            return None
        return whole.subset(lambda eid: self.owner_partition(eid) == partition)

    def _restored(self, partition: int, checkpoint: Checkpoint | None) -> ExperimentAnalysis | None:
        """The partition's saved analysis; None when there is none or it is unreadable."""
        if checkpoint is None:
            return None
        try:
            return ExperimentAnalysis.from_state(checkpoint.state_dict())
        except (KeyError, ValueError, TypeError) as exc:
            log.error(
                "checkpoint unreadable; rebuilding the partition from the earliest offset",
                extra={"partition": partition, "error": repr(exc)},
            )
            return None

    async def save_shard(
        self, partition: int, shard: ExperimentAnalysis, offsets: dict[str, int]
    ) -> bool:
        """The partition's analysis, its offset and its experiments' snapshots, in one row
        guarded by the partition's position."""
        return await self.store.save(
            self.checkpoint_name(partition),
            Checkpoint(shard.to_state(), offsets, self.events, self.cluster_id),
            {eid: state.snapshot() for eid, state in shard.experiments.items()},
            position=self.offsets.get(partition),
        )

    def state_of(self, experiment_id: str) -> ExperimentState | None:
        """The live state of an experiment this instance owns (None when it owns none)."""
        shard = self.shards.get(self.owner_partition(experiment_id))
        return shard.experiments.get(experiment_id) if shard else None

    async def published_state(self, experiment_id: str) -> ExperimentState | None:
        """The live state if this instance owns the experiment, else its owner's last
        checkpointed snapshot."""
        live = self.state_of(experiment_id)
        if live is not None:
            return live
        snapshot = await self.store.snapshot(experiment_id)
        return None if snapshot is None else ExperimentState.from_dict(snapshot)

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self.forwarder is None:
            await super().run(stop)
        else:
            await run_together(self.forwarder.run(stop), super().run(stop))

    async def handle(self, partition: int, shard: ExperimentAnalysis, records: list[Any]) -> None:
        """Analyse a partition's tagged events; a record that is not one is dead-lettered."""
        if self._follow_first:
            # partitions newly adopted: follow the operators before counting their calls (a
            # stop whose counts are recorded while the checkpoint holds the experiment running)
            self._follow_first = False
            await self._refresh()
        tagged: list[Tagged] = []
        looked_up: set[str] = set()  # once a turn: a draft's calls would ask for every one
        dropped_before = dict(shard.ignored)
        for record in records:
            if self._replay_ends and self._replays_end_at(partition, shard, record.offset):
                # the calls before this record are counted first: no call at or past the end
                # a replay was given counts towards its recorded decision
                self._observe(partition, shard, tagged)
                tagged = []
                self._end_replays(partition, record.offset)
            try:
                events = decode_tagged(record.value, _arms(record))
            except (ValueError, TypeError) as exc:
                await dead_letter(self.producer, record, exc, attempts=1, service="experiments")
                continue
            for event in events:
                experiment_id = event.experiment_id
                if experiment_id not in looked_up and not shard.is_tracked(experiment_id):
                    looked_up.add(experiment_id)
                    await self._learn(shard, experiment_id)
            tagged.extend(events)
        self._observe(partition, shard, tagged)
        _count_dropped(dropped_before, shard.ignored)

    def _observe(self, partition: int, shard: ExperimentAnalysis, tagged: list[Tagged]) -> None:
        self.events += len(tagged)
        self._concluded(partition, shard.observe_many(tagged, time.time()))

    def _replays_end_at(self, partition: int, shard: ExperimentAnalysis, offset: int) -> bool:
        """Whether a replay of this partition followed up to a recorded decision's counts was
        given an end (:meth:`_end_replays_at_log_end`) at or before ``offset``."""
        return any(
            self._replay_ends.get(eid, offset + 1) <= offset for eid in shard.following_records()
        )

    def _concluded(self, partition: int, conclusions: list[dict[str, Any]]) -> None:
        if conclusions:
            self.unrecorded.setdefault(partition, []).extend(conclusions)

    async def after_batch(self) -> None:
        """Follow the operators; record and announce the conclusions reached and checkpoint at
        once (the snapshots other instances serve then show them), else when one is due."""
        refresh = (
            self._refresh_soon or time.monotonic() - self._last_refresh >= self.refresh_interval_s
        )
        if refresh or self._announce_now.is_set():
            await self.publish_announcements()
        if refresh:
            await self._refresh()
        await self._end_replays_at_log_end()
        if self.unrecorded or self.checkpoint_due():
            await self.checkpoint_locked()

    async def checkpoint_locked(self) -> None:
        """Record every conclusion not recorded yet, announce them, then checkpoint.

        A rebalance may checkpoint a partition between two turns of a poll, before
        :meth:`after_batch`: saved unrecorded, a conclusion would be lost in a crash before
        the record (the next owner loads the concluded experiment and replays past the events
        that concluded it). When PostgreSQL fails, this raises before anything is saved; the
        conclusions not recorded stay for the next try. A broker that fails delays the
        announcements, from their audit rows (the outbox), not the checkpoint."""
        if await self.record_conclusions():
            await self.publish_announcements()
        await super().checkpoint_locked()

    async def record_conclusions(self) -> int:
        """Record the conclusions not recorded yet, each forgotten once done; how many."""
        done = 0
        for partition in sorted(self.unrecorded):
            pending = self.unrecorded[partition]
            while pending:
                await self._record_conclusion(partition, pending[0])
                pending.pop(0)
                done += 1
            del self.unrecorded[partition]
        return done

    async def _record_conclusion(self, partition: int, conclusion: dict[str, Any]) -> None:
        """Record a conclusion, announced from its audit row; when PostgreSQL holds another
        decision of the experiment already (or an operator's stop), the shard takes that one.
        An operator's stop the analysis saw is recorded already: its counts are."""
        experiment_id = conclusion["experiment_id"]
        self.known.pop(experiment_id, None)
        if is_operator_stop(conclusion):
            await self._record_stop_counts(experiment_id, conclusion["n"])
            return
        decision = recorded_decision(conclusion)
        if await self.repo.conclude(
            experiment_id, conclusion["status"], decision, "analysis", announce=True
        ):
            return
        experiment = await self.repo.get(experiment_id)
        shard = self.shards.get(partition)
        if shard is None or not shard.is_tracked(experiment_id):
            return
        settled = shard.settle(experiment_id, experiment.decision, _ended_at(experiment))
        if is_operator_stop(settled):
            await self._record_stop_counts(experiment_id, settled["n"])
        if settled != conclusion:
            log.info(
                "the experiment was concluded already; its shard holds that decision",
                extra={
                    "experiment_id": experiment_id,
                    "status": experiment.status,
                    "reached": {k: conclusion[k] for k in ("winner", "reason", "decided_at")},
                },
            )

    async def _record_stop_counts(self, experiment_id: str, counts: list[int]) -> None:
        if not await self.repo.record_stop_counts(experiment_id, counts):
            # another owner recorded them first (its refresh saw the stop before this one's)
            log.warning(
                "the stop's counts were recorded already; these are not",
                extra={"experiment_id": experiment_id, "counts": counts},
            )

    def released(self, partition: int, shard: ExperimentAnalysis) -> None:
        # Its checkpoint failed (every conclusion is recorded before one is saved): the next
        # owner replays from the last one saved, which precedes these conclusions, and
        # reaches them again (PostgreSQL keeps the first recorded).
        self.unrecorded.pop(partition, None)

    def announce_soon(self) -> None:
        """An operator started or stopped an experiment: announce it after this batch."""
        self._announce_now.set()

    async def publish_announcements(self) -> int:
        """Announce the operators' starts and stops, and the decisions recorded, not announced
        yet; how many were.  A broker or PostgreSQL failure leaves them for the next try (at
        the next refresh)."""
        self._announce_now.clear()
        try:
            async with self.repo.unannounced() as pending:
                for announcement in pending:
                    await self.announce(announcement.body())
        except Exception as exc:
            if not (isinstance(exc, KafkaError) or is_dependency_failure(exc)):
                raise
            ANNOUNCE_FAILURES.inc()
            log.warning("announcements not published, retried later", extra={"error": repr(exc)})
            return 0
        return len(pending)

    async def _learn(self, shard: ExperimentAnalysis, experiment_id: str) -> None:
        """Look up an experiment first met on an event (it may have started a moment ago).

        One the analysis decided already is tracked again when its calls are being replayed:
        a crash came between the record of its decision and the first checkpoint that held it
        (every later checkpoint of its partition holds it). Its calls are counted up to the
        decision's counts, and the decision recorded stands
        (:meth:`ExperimentAnalysis.track_recorded`). So is one an operator stopped, up to the
        counts recorded when the analysis saw the stop; without them (a crash came before they
        were recorded) it is tracked as running, and the next refresh halts it and records
        what the replay counted by then."""
        checked = self._not_running.get(experiment_id)
        if checked is not None and time.monotonic() - checked < NEGATIVE_CACHE_S:
            return
        try:
            experiment = await self.repo.get(experiment_id)
        except ExperimentNotFound:
            experiment = None
        if experiment is None or not experiment.started_at:
            # A draft is not remembered as not running: it may start a moment later, and its
            # first calls after the start must count (it is looked up again next turn).
            if experiment is None or experiment.status != "draft":
                self._not_running[experiment_id] = time.monotonic()
            return
        started_at = experiment.started_at.timestamp()
        recorded = experiment.decision
        if experiment.status == "stopped" and recorded is None:  # by an operator
            if experiment.stop_counts is None:
                shard.track(experiment.id, experiment.definition, started_at)
                self._refresh_soon = True  # halted after this batch, before any checkpoint
                return
            recorded = _operator_stop_record(experiment)
        if experiment.status == "running":
            self.known[experiment.id] = experiment
            shard.track(experiment.id, experiment.definition, started_at)
        elif recorded is None or not shard.track_recorded(
            experiment.id, experiment.definition, started_at, recorded
        ):
            self._not_running[experiment_id] = time.monotonic()

    async def _end_replays_at_log_end(self) -> None:
        """End the replays that read what the log holds short of a recorded decision's counts.

        A replay counts an experiment's calls up to the counts its recorded decision (or an
        operator's stop) was made on. When the log's retention dropped some of those calls,
        the counts are never reached: once the partition is read up to the end its log had
        after the experiment began to follow the record (every call the decision counted came
        before that end), the recorded decision is taken as it stands, over the calls
        replayed, and nothing is recorded or announced again."""
        following = {p: shard.following_records() for p, shard in self.shards.items()}
        live = {eid for ids in following.values() for eid in ids}
        for eid in [e for e in self._replay_ends if e not in live]:
            del self._replay_ends[eid]
        unnoted = [
            TopicPartition(self.topic, p)
            for p, ids in following.items()
            if any(eid not in self._replay_ends for eid in ids)
        ]
        if unnoted:
            try:
                ends = await self.consumer.end_offsets(unnoted)
            except KafkaError as exc:
                # a broker that does not answer now is asked again after the next batch
                log.warning("the log's end offsets could not be read: %r; tried again", exc)
                return
            for tp in unnoted:
                for eid in following[tp.partition]:
                    self._replay_ends.setdefault(eid, int(ends[tp]))
        positions = await self._read_up_to(following)
        for partition in following:
            self._end_replays(partition, positions[partition])

    async def _read_up_to(self, following: dict[int, list[str]]) -> dict[int, int]:
        """Where each partition is read up to: its next offset, or the log's start when that
        is further (the records before it expired: none of them will be read). Asked only of
        a partition short of a replay's end whose next offset has not moved since the last
        batch (a replay that reads on costs the broker no request a batch): one whose records
        up to the end all expired holds no record left to read before it, and waits for
        none."""
        positions = {p: self.offsets.get(p, 0) for p in following}
        behind = [
            p
            for p, ids in following.items()
            if any(positions[p] < self._replay_ends.get(eid, positions[p]) for eid in ids)
        ]
        short = [
            TopicPartition(self.topic, p) for p in behind if self._short_at.get(p) == positions[p]
        ]
        self._short_at = {p: positions[p] for p in behind}
        if short:
            try:
                starts = await self.consumer.beginning_offsets(short)
            except KafkaError as exc:  # asked again after the next batch
                log.warning("the log's start offsets could not be read: %r; tried again", exc)
                return positions
            for tp in short:
                positions[tp.partition] = max(positions[tp.partition], int(starts[tp]))
        return positions

    def _end_replays(self, partition: int, position: int) -> None:
        """End the replays of ``partition`` whose end is at or before ``position``."""
        for eid in self.shards[partition].following_records():
            end = self._replay_ends.get(eid)
            if end is None or position < end:
                continue
            ended = self.shards[partition].end_replay(eid)
            del self._replay_ends[eid]
            if ended is None:
                continue
            self.dirty.add(partition)
            replayed, recorded = ended
            log.warning(
                "the replay reached the end of the log short of the recorded counts (the "
                "log's retention dropped some calls); the recorded decision stands over "
                "the calls replayed",
                extra={
                    "experiment_id": eid,
                    "partition": partition,
                    "offset": position,
                    "replayed": replayed,
                    "recorded": recorded,
                },
            )

    async def _refresh(self) -> None:
        """Follow the operators: newly started experiments, stops; expire old ones (their
        conclusions are recorded before the next checkpoint)."""
        self._last_refresh = time.monotonic()
        self._refresh_soon = False
        # Forget what has lapsed: a flood of distinct unknown ids would otherwise grow this
        # map for as long as the instance runs.
        self._not_running = {
            eid: at
            for eid, at in self._not_running.items()
            if self._last_refresh - at < NEGATIVE_CACHE_S
        }
        now = time.time()
        everything = await self.repo.all()
        self.known = {e.id: e for e in everything}
        for experiment in everything:
            partition = self.owner_partition(experiment.id)
            shard = self.shards.get(partition)
            if shard is None:
                continue  # another instance owns it
            tracked = shard.is_tracked(experiment.id)
            if experiment.status == "running" and experiment.started_at and not tracked:
                shard.track(experiment.id, experiment.definition, experiment.started_at.timestamp())
            elif experiment.status == "stopped" and tracked and experiment.decision is None:
                self._follow_stop(partition, shard, experiment, now)
        for partition, shard in self.shards.items():
            expired = shard.expire_all(now)
            if expired:
                self.dirty.add(partition)
                self._concluded(partition, expired)

    def _follow_stop(
        self, partition: int, shard: ExperimentAnalysis, experiment: Experiment, now: float
    ) -> None:
        """An operator stopped a tracked experiment: with its counts recorded (the analysis
        saw the stop before this shard's checkpoint), count up to them; otherwise halt it
        now, and record its counts before the checkpoint that holds the stop. Dated at the
        stop, as settle() dates it: the same stop, the same time."""
        if experiment.stop_counts is not None:
            if shard.follow_record(experiment.id, _operator_stop_record(experiment, now)):
                self.dirty.add(partition)
            return
        halted = shard.halt(experiment.id, OPERATOR_STOP, _ended_at(experiment, now))
        if halted is not None:
            self.dirty.add(partition)
            self._concluded(partition, [halted])

    async def announce(self, body: dict[str, Any]) -> None:
        await self.producer.send_and_wait(
            self.experiments_topic,
            json.dumps(body, default=str).encode(),
            key=str(body["experiment_id"]).encode(),
        )
        ANNOUNCED.labels(body["kind"]).inc()


def _ended_at(experiment: Experiment, otherwise: float | None = None) -> float:
    """When the experiment ended (its stop or decision), else ``otherwise`` (by default now)."""
    if experiment.ended_at is not None:
        return float(experiment.ended_at.timestamp())
    return time.time() if otherwise is None else otherwise


def _operator_stop_record(experiment: Experiment, otherwise: float | None = None) -> dict[str, Any]:
    """The record of an operator's stop from the counts the analysis recorded at it, dated at
    the stop (else ``otherwise``, by default now)."""
    assert experiment.stop_counts is not None
    stopped_at = datetime.fromtimestamp(_ended_at(experiment, otherwise), UTC).isoformat()
    return stop_record(stopped_at, experiment.stop_counts)


def _arms(record: Any) -> bytes | None:
    """The record's :data:`ARMS_HEADER` (None: forwarded by a version before it)."""
    for key, value in record.headers or ():
        if key == ARMS_HEADER:
            return bytes(value)
    return None


def _count_dropped(before: dict[str, int], after: dict[str, int]) -> None:
    """Add to :data:`DROPPED` what a batch added to the analysis' drop counts (the domain
    keeps them per reason in its checkpointed state, and knows nothing of Prometheus)."""
    for reason, count in after.items():
        added = count - before.get(reason, 0)
        if added:
            DROPPED.labels(reason).inc(added)
