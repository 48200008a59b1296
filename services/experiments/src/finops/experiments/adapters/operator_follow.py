"""Following the operators: the analysis intake's part that tracks the experiments that
start, halts those an operator stops (recording their counts before any checkpoint that holds
the stop), expires those past their duration, and looks up an experiment first met on an
event (:class:`FollowOperators`, a mixin of :class:`~.analysis_intake.AnalysisIntake`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from finops.experiments.adapters.intake_base import IntakeBase
from finops.experiments.adapters.repository import Experiment
from finops.experiments.domain.analysis import ExperimentAnalysis
from finops.experiments.domain.conclusions import OPERATOR_STOP, stop_record
from finops.experiments.domain.definition import ExperimentNotFound

NEGATIVE_CACHE_S = 1.0


class FollowOperators(IntakeBase):
    """The operators' starts and stops, and the experiments met first on an event."""

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
            recorded = operator_stop_record(experiment)
        if experiment.status == "running":
            self.known[experiment.id] = experiment
            shard.track(experiment.id, experiment.definition, started_at)
        elif recorded is None or not shard.track_recorded(
            experiment.id, experiment.definition, started_at, recorded
        ):
            self._not_running[experiment_id] = time.monotonic()

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
            if shard.follow_record(experiment.id, operator_stop_record(experiment, now)):
                self.dirty.add(partition)
            return
        halted = shard.halt(experiment.id, OPERATOR_STOP, ended_at(experiment, now))
        if halted is not None:
            self.dirty.add(partition)
            self._concluded(partition, [halted])


def ended_at(experiment: Experiment, otherwise: float | None = None) -> float:
    """When the experiment ended (its stop or decision), else ``otherwise`` (by default now)."""
    if experiment.ended_at is not None:
        return float(experiment.ended_at.timestamp())
    return time.time() if otherwise is None else otherwise


def operator_stop_record(experiment: Experiment, otherwise: float | None = None) -> dict[str, Any]:
    """The record of an operator's stop from the counts the analysis recorded at it, dated at
    the stop (else ``otherwise``, by default now)."""
    assert experiment.stop_counts is not None
    stopped_at = datetime.fromtimestamp(ended_at(experiment, otherwise), UTC).isoformat()
    return stop_record(stopped_at, experiment.stop_counts)
