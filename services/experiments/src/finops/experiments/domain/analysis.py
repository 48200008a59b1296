"""The streaming analysis: tagged cost events into per-variant statistics, a look after each
event, and the conclusions it reaches. Pure: no I/O; its state is plain data for checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np

from finops.experiments.domain.conclusions import (
    OPERATOR_STOP,
    conclusion_from_record,
    conclusion_of,
)
from finops.experiments.domain.decision import Verdict, decisive_looks
from finops.experiments.domain.definition import Definition
from finops.experiments.domain.experiment_state import ExperimentState, experiment_results
from finops.experiments.domain.srm import srm_p_value
from finops.experiments.domain.stats import VariantStats, cumulative_stats
from finops.experiments.domain.tagged import Tagged

STATE_VERSION = 1
#: Why a tagged event was not counted (the keys of :attr:`ExperimentAnalysis.ignored`).
DropReason = Literal[
    "duplicate_event_id",
    "unknown_variant",
    "unknown_or_not_running_experiment",
    "experiment_concluded",
    "unpriced",
]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)


def same_arm(provider: str, model: str) -> tuple[str, str]:
    """What a call's arm is compared on with its variant's to count a fallback: provider and
    model with the spaces around them dropped and case ignored (as pricing takes a provider's
    name), no aliases: ``OpenAI`` is ``openai``, ``gemini`` is not ``google``, a model's
    dated version is not its alias.

    >>> same_arm(" OpenAI ", "GPT-4o") == same_arm("openai", "gpt-4o")
    True
    """
    return provider.strip().lower(), model.strip().lower()


class ExperimentAnalysis:
    """Every running experiment's statistics, looked at after each of its events."""

    def __init__(self) -> None:
        self.experiments: dict[str, ExperimentState] = {}
        self.ignored: dict[str, int] = {}  # why tagged events were not counted

    def track(self, experiment_id: str, definition: Definition, started_at: float) -> None:
        """Start analysing a running experiment (no-op when it is tracked already)."""
        if experiment_id not in self.experiments:
            self.experiments[experiment_id] = ExperimentState(
                definition, started_at, [VariantStats() for _ in definition.variants]
            )

    def track_recorded(
        self,
        experiment_id: str,
        definition: Definition,
        started_at: float,
        recorded: dict[str, Any],
    ) -> bool:
        """Start analysing an experiment PostgreSQL recorded a decision of
        (:func:`recorded_decision`) that no checkpoint holds: a crash came between the record
        and the first checkpoint that held it, and its calls are being replayed.

        They are counted (each once, as any) up to the decision's counts ``n``, the calls the
        analysis that decided counted: the first ``sum(n)`` accepted, in the partition's
        order, as the look after each one stopped there. Then the recorded decision is the
        experiment's conclusion, with nothing to record or announce again, and the later calls
        are dropped as ``experiment_concluded``. Until then it is not looked at, nor expired.

        False, and nothing tracked, when the experiment is tracked already or the record has
        no counts for the definition's variants (one recorded by a version that kept none).
        """
        n = recorded.get("n")
        if (
            experiment_id in self.experiments
            or not isinstance(n, list)
            or len(n) != len(definition.variants)
            or not all(isinstance(x, int) and x >= 0 for x in n)
        ):
            return False
        state = ExperimentState(
            definition, started_at, [VariantStats() for _ in definition.variants]
        )
        state.recorded = dict(recorded)
        self.experiments[experiment_id] = state
        self._count_up_to_record(experiment_id, state, [])
        return True

    def follow_record(self, experiment_id: str, recorded: dict[str, Any]) -> bool:
        """Count a tracked experiment's calls up to ``recorded``'s counts from now on, as
        :meth:`track_recorded` does: PostgreSQL holds an operator's stop and its counts
        (:func:`~.conclusions.stop_record`) while this state, from a checkpoint taken before
        the stop, holds it running. False, and nothing changed, when the experiment is not
        tracked, is concluded or follows a record already."""
        state = self.experiments.get(experiment_id)
        if state is None or state.conclusion is not None or state.recorded is not None:
            return False
        state.recorded = dict(recorded)
        self._count_up_to_record(experiment_id, state, [])
        return True

    def following_records(self) -> list[str]:
        """The experiments counted up to a recorded decision's counts, not reached yet
        (:meth:`track_recorded`, :meth:`follow_record`); not one concluded meanwhile (a
        version before ``exp0006`` halts an operator's stop it follows the counts of)."""
        return [
            eid
            for eid, state in self.experiments.items()
            if state.recorded is not None and state.conclusion is None
        ]

    def end_replay(self, experiment_id: str) -> tuple[list[int], list[int]] | None:
        """The replay of an experiment followed up to a recorded decision's counts reached the
        end of what the partition's log holds short of them (the log's retention dropped some
        of the calls the decision counted): make the recorded decision its conclusion as it
        stands, over the calls counted. The counts replayed and the recorded ones; None when
        the experiment does not follow a record (not tracked, or its counts were reached)."""
        state = self.experiments.get(experiment_id)
        if state is None or state.recorded is None or state.conclusion is not None:
            return None
        recorded = state.recorded
        replayed = [int(s.n) for s in state.stats]
        state.conclusion = conclusion_from_record(
            experiment_id, state.definition, recorded, replayed
        )
        state.recorded = None
        return replayed, [int(x) for x in recorded["n"]]

    def is_tracked(self, experiment_id: str) -> bool:
        return experiment_id in self.experiments

    def variant_stats(self, experiment_id: str) -> list[VariantStats] | None:
        state = self.experiments.get(experiment_id)
        return state.stats if state else None

    def _ignore(self, why: DropReason) -> None:
        self.ignored[why] = self.ignored.get(why, 0) + 1

    def observe(self, event: Tagged, now: float) -> dict[str, Any] | None:
        """Count one tagged event; the conclusion when this look decides the experiment."""
        conclusions = self.observe_many([event], now)
        return conclusions[0] if conclusions else None

    def observe_many(self, events: Sequence[Tagged], now: float) -> list[dict[str, Any]]:
        """Count tagged events in order, with a look after each one; the conclusions reached.

        The looks of a batch are computed at once on cumulative arrays (the code the
        simulations of ``finops experiments validate`` run); the events after the look that
        decides an experiment are not counted. The p95 latency guardrail, which needs the
        histogram, is checked after the batch.
        """
        by_experiment: dict[str, list[Tagged]] = {}
        for event in events:
            by_experiment.setdefault(event.experiment_id, []).append(event)
        conclusions = []
        for experiment_id, batch in by_experiment.items():
            conclusion = self._observe_batch(experiment_id, batch, now)
            if conclusion is not None:
                conclusions.append(conclusion)
        return conclusions

    def _accepted(self, state: ExperimentState, batch: Sequence[Tagged]) -> list[Tagged]:
        names = state.definition.variant_names
        accepted = []
        for event in batch:
            if event.cost_usd is None:
                self._ignore("unpriced")
            elif event.variant not in names:
                self._ignore("unknown_variant")
            elif state.remember(event.event_id):
                accepted.append(event)
            else:
                self._ignore("duplicate_event_id")
        return accepted

    def _observe_batch(
        self, experiment_id: str, batch: Sequence[Tagged], now: float
    ) -> dict[str, Any] | None:
        state = self.experiments.get(experiment_id)
        if state is None or state.conclusion is not None:
            why: DropReason = (
                "unknown_or_not_running_experiment" if state is None else "experiment_concluded"
            )
            for _ in batch:
                self._ignore(why)
            return None
        accepted = self._accepted(state, batch)
        if state.recorded is not None:
            self._count_up_to_record(experiment_id, state, accepted)
            return None  # recorded already: nothing to record or announce
        if not accepted:
            return self.expire(experiment_id, now)
        decisive = np.flatnonzero(self._looks(state, accepted))
        counted = accepted if decisive.size == 0 else accepted[: int(decisive[0]) + 1]
        self._count(state, counted)
        for _ in accepted[len(counted) :]:
            self._ignore("experiment_concluded")
        if decisive.size or state.definition.guardrails.max_p95_latency_ms is not None:
            verdict = state.analysis().verdict
            if verdict is not None:
                return self._conclude(experiment_id, state, verdict, now)
        return self.expire(experiment_id, now)

    @staticmethod
    def _count(state: ExperimentState, events: Sequence[Tagged]) -> None:
        variants = state.definition.variants
        names = state.definition.variant_names
        for event in events:
            assert event.cost_usd is not None  # unpriced events are not accepted
            index = names.index(event.variant)
            arm = same_arm(variants[index].provider, variants[index].model)
            state.stats[index].add(
                cost_usd=event.cost_usd,
                success=event.success,
                latency_ms=event.latency_ms,
                quality=event.quality,
                fell_back=event.arm is not None and same_arm(*event.arm) != arm,
            )

    def _count_up_to_record(
        self, experiment_id: str, state: ExperimentState, accepted: Sequence[Tagged]
    ) -> None:
        """Count ``accepted`` up to the recorded decision's counts (:meth:`track_recorded`),
        each variant up to its own, and make it the conclusion once every one is reached.

        On a whole replay that is the first ``sum(n)`` calls (they hold ``n[i]`` of variant
        ``i``); on one that starts after the experiment's first calls (a log past its
        retention) no variant is counted past what the decision counted.
        """
        recorded = state.recorded
        assert recorded is not None
        names = state.definition.variant_names
        room = [want - int(s.n) for want, s in zip(recorded["n"], state.stats, strict=True)]
        counted = []
        for event in accepted:
            variant = names.index(event.variant)
            if room[variant] > 0:
                room[variant] -= 1
                counted.append(event)
            else:
                self._ignore("experiment_concluded")
        self._count(state, counted)
        if not any(left > 0 for left in room):
            counted_n = [int(s.n) for s in state.stats]
            state.conclusion = conclusion_from_record(
                experiment_id, state.definition, recorded, counted_n
            )
            state.recorded = None

    def _looks(self, state: ExperimentState, events: Sequence[Tagged]) -> Any:
        """Whether the look after each event reaches a verdict."""
        d = state.definition
        variant = np.array([d.variant_names.index(e.variant) for e in events])
        cost = np.array([e.cost_usd for e in events], dtype=float)
        success = np.array([e.success for e in events], dtype=float)
        has_quality = np.array([e.quality is not None for e in events], dtype=float)
        quality = np.array([e.quality if e.quality is not None else 0.0 for e in events])
        stats = [
            cumulative_stats(variant == i, cost, success, quality, has_quality, base)
            for i, base in enumerate(state.stats)
        ]
        srm_p: Any = 1.0
        if d.allocation == "fixed":
            srm_p = srm_p_value([s.n for s in stats], d.weights)
        return decisive_looks(stats, d.analysis_settings(), srm_p)

    def expire(self, experiment_id: str, now: float) -> dict[str, Any] | None:
        """Stop an experiment past its ``max_duration_s`` with no winner."""
        state = self.experiments[experiment_id]
        if state.recorded is not None:
            return None  # decided already: it ends with its calls counted
        if state.conclusion is None and now - state.started_at >= state.definition.max_duration_s:
            reason = (
                f"max_duration_s {state.definition.max_duration_s:g} reached without a "
                "significant difference"
            )
            return self._conclude(experiment_id, state, Verdict(None, reason), now)
        return None

    def expire_all(self, now: float) -> list[dict[str, Any]]:
        found = [self.expire(eid, now) for eid in list(self.experiments)]
        return [c for c in found if c is not None]

    def halt(self, experiment_id: str, reason: str, now: float) -> dict[str, Any] | None:
        """An operator stopped the experiment: its events count no more, its results stay.
        The conclusion, whose counts are the stop's (:func:`stop_record`); None when the
        experiment is not tracked, concluded already, or replayed up to recorded counts."""
        state = self.experiments.get(experiment_id)
        if state is None or state.conclusion is not None or state.recorded is not None:
            return None
        return self._conclude(experiment_id, state, Verdict(None, reason), now)

    def _conclude(
        self, experiment_id: str, state: ExperimentState, verdict: Verdict, now: float
    ) -> dict[str, Any]:
        state.conclusion = conclusion_of(
            experiment_id,
            state.definition,
            verdict.winner,
            verdict.reason,
            datetime.fromtimestamp(now, UTC).isoformat(),
            [int(s.n) for s in state.stats],
        )
        return state.conclusion

    def settle(
        self, experiment_id: str, recorded: dict[str, Any] | None, stopped_at: float
    ) -> dict[str, Any]:
        """Make what PostgreSQL recorded the experiment's conclusion, in place of the one
        this analysis reached: a replay after a crash may reach another (its batches split
        differently, or the clock past ``max_duration_s`` before the deciding event), but the
        first decision recorded is the one that stands. ``recorded``: the decision recorded
        (:func:`recorded_decision`); None when an operator stopped the experiment first (at
        ``stopped_at``, epoch seconds). The conclusion now kept."""
        state = self.experiments[experiment_id]
        state.recorded = None
        counted = [int(s.n) for s in state.stats]
        if recorded is None:
            decided_at = datetime.fromtimestamp(stopped_at, UTC).isoformat()
            state.conclusion = conclusion_of(
                experiment_id, state.definition, None, OPERATOR_STOP, decided_at, counted
            )
        else:
            state.conclusion = conclusion_from_record(
                experiment_id, state.definition, recorded, counted
            )
        return state.conclusion

    def results(self, experiment_id: str, definition: Definition) -> dict[str, Any]:
        """The results body of the API (zeros for an experiment not analysed yet)."""
        return experiment_results(experiment_id, definition, self.experiments.get(experiment_id))

    def subset(self, keep: Callable[[str], bool]) -> ExperimentAnalysis:
        """The experiments whose id ``keep`` accepts (their states shared, not copied)."""
        part = ExperimentAnalysis()
        part.experiments = {k: v for k, v in self.experiments.items() if keep(k)}
        return part

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "experiments": {k: v.to_dict() for k, v in self.experiments.items()},
            "ignored": dict(self.ignored),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExperimentAnalysis:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown analysis state version {state.get('version')!r}")
        analysis = cls()
        analysis.experiments = {
            k: ExperimentState.from_dict(v) for k, v in state["experiments"].items()
        }
        analysis.ignored = dict(state["ignored"])
        return analysis
