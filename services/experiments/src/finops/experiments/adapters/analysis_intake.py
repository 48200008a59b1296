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

This module holds the loop (the partitions' analyses loaded, saved, fed their records) and
the results; its parts are mixins of :class:`~.intake_base.IntakeBase`, the state they
share, each in a module named by its role: :mod:`.operator_follow`, :mod:`.replay_ends`,
:mod:`.conclusion_records` and :mod:`.announcements`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from finops.common.checkpoints import Checkpoint
from finops.common.dead_letters import dead_letter
from finops.common.lifespan import run_together
from finops.common.metrics import counter_by
from finops.experiments.adapters.announcements import Announcements
from finops.experiments.adapters.conclusion_records import ConclusionRecords
from finops.experiments.adapters.operator_follow import FollowOperators
from finops.experiments.adapters.replay_ends import ReplayEnds
from finops.experiments.domain.analysis import DROP_REASONS, ExperimentAnalysis
from finops.experiments.domain.experiment_state import ExperimentState
from finops.experiments.domain.tagged import ARMS_HEADER, Tagged, decode_tagged, with_arms

log = logging.getLogger(__name__)

DROPPED = counter_by(
    "finops_experiments_events_dropped_total",
    "Tagged events the analysis did not count, by reason",
    "reason",
    DROP_REASONS,
)


class AnalysisIntake(ConclusionRecords, FollowOperators, ReplayEnds, Announcements):
    """The :class:`ExperimentAnalysis` of each partition this instance owns: its loading and
    saving, the loop that analyses its tagged events, and its results (the parts are the
    mixins', :mod:`.intake_base`)."""

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
                events = decode_tagged(record.value)
            except (ValueError, TypeError) as exc:
                await dead_letter(self.producer, record, exc, attempts=1, service="experiments")
                continue
            events = _with_arms(record, events)
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

    def released(self, partition: int, shard: ExperimentAnalysis) -> None:
        # Its checkpoint failed (every conclusion is recorded before one is saved): the next
        # owner replays from the last one saved, which precedes these conclusions, and
        # reaches them again (PostgreSQL keeps the first recorded).
        self.unrecorded.pop(partition, None)


def _with_arms(record: Any, events: list[Tagged]) -> list[Tagged]:
    """``events`` with the arms of the record's :data:`ARMS_HEADER`; a header that does not
    decode (a later forwarder's, say) is optional information: ignored with a warning, the
    events counted with no arm (no fallback) rather than dead-lettered."""
    arms = _arms(record)
    if arms is None:
        return events
    try:
        return with_arms(events, arms)
    except (ValueError, TypeError) as exc:
        log.warning(
            "record %s/%s@%s: its %s header ignored (%s); its %d events are counted with no "
            "arm (none a fallback)",
            getattr(record, "topic", "?"),
            getattr(record, "partition", "?"),
            getattr(record, "offset", "?"),
            ARMS_HEADER,
            exc,
            len(events),
        )
        return events


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
