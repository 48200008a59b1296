"""Conclusions recorded before any checkpoint: the analysis intake's part that records in
PostgreSQL each conclusion the analysis reached (its decision with its audit row, the outbox
of its announcement, or an operator's stop's counts) before any checkpoint that holds it is
saved, and takes the decision PostgreSQL holds when it refuses one
(:class:`ConclusionRecords`, a mixin of :class:`~.analysis_intake.AnalysisIntake`)."""

from __future__ import annotations

import logging
from typing import Any

from finops.experiments.adapters.intake_base import IntakeBase
from finops.experiments.adapters.operator_follow import ended_at
from finops.experiments.domain.conclusions import is_operator_stop, recorded_decision

log = logging.getLogger(__name__)


class ConclusionRecords(IntakeBase):
    """The conclusions reached, recorded in PostgreSQL."""

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
        settled = shard.settle(experiment_id, experiment.decision, ended_at(experiment))
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
