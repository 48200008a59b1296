"""Replays short of their recorded counts: the analysis intake's part that ends the replay
of an experiment followed up to a recorded decision's counts (or an operator's stop's) once
its partition is read to the end its log had when the experiment began to follow the record,
when the log's retention dropped some of the calls the decision counted (:class:`ReplayEnds`,
a mixin of :class:`~.analysis_intake.AnalysisIntake`)."""

from __future__ import annotations

import logging

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from finops.experiments.adapters.intake_base import IntakeBase
from finops.experiments.domain.analysis import ExperimentAnalysis

log = logging.getLogger(__name__)


class ReplayEnds(IntakeBase):
    """Where each replay that follows a recorded decision's counts ends."""

    def _replays_end_at(self, partition: int, shard: ExperimentAnalysis, offset: int) -> bool:
        """Whether a replay of this partition followed up to a recorded decision's counts was
        given an end (:meth:`_end_replays_at_log_end`) at or before ``offset``."""
        return any(
            self._replay_ends.get(eid, offset + 1) <= offset for eid in shard.following_records()
        )

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
