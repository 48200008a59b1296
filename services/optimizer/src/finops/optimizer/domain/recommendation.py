"""One recommendation and the steps that narrow its candidate arms. Pure: no I/O.

:meth:`.OptimizerEngine.recommend` narrows the arms of a task type before the routing policy
picks one: by circuit breaker (:func:`screened`), by budget pacing (:func:`affordable`) and by
an experiment's promoted winner (:func:`narrowed_by_promotion`); each step also gives the text
it adds to the answer's ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.circuits import BreakerStates, SkippedArm, screen


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    task_type: str
    arm: ArmSpec
    expected: dict[str, float | None]
    propensity: float
    policy_version: str
    alternatives: list[dict[str, Any]]
    reason: str
    explored: bool
    time: str
    #: what made an explored pick (``Decision.exploration``); ``None`` for a greedy one
    exploration: str | None = None
    #: arms left out because their circuit breaker is open (or half-open, not probing)
    skipped: tuple[SkippedArm, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
            "task_type": self.task_type,
            "model": self.arm.model,
            "provider": self.arm.provider,
            "config": self.arm.config,
            "arm": self.arm.arm_id,
            "expected": self.expected,
            "propensity": self.propensity,
            "policy_version": self.policy_version,
            "alternatives": self.alternatives,
            "reason": self.reason,
            "explored": self.explored,
            "exploration": self.exploration,
            "time": self.time,
            "skipped": [s.to_dict() for s in self.skipped],
        }


def affordable(
    summary: Mapping[str, Mapping[str, Any]], candidates: list[str], pacing: Mapping[str, Any]
) -> tuple[list[str], str]:
    """Candidates whose expected cost (``summary``: the policy's arm summary of the task type)
    fits the pacing's cap per call, and the reason.

    An agent or team over its pace still gets an answer: when no candidate fits (or
    there is no call rate to cap by yet) the cheapest one is kept rather than none.
    """
    paced = pacing.get("max_cost_per_call_usd")  # None: no call rate yet
    cap = paced or 0.0
    kept = [a for a in candidates if (summary.get(a, {}).get("cost_usd") or 0.0) <= cap]
    if not kept:
        cheapest = min(candidates, key=lambda a: summary.get(a, {}).get("cost_usd") or float("inf"))
        kept = [cheapest]
    limit = f"cap ${cap:.6f}/call" if paced is not None else "no call rate: cheapest"
    return kept, f"budget pacing ({pacing.get('action')}, {limit}); "


def narrowed_by_promotion(
    promoted: Mapping[str, Any] | None, candidates: list[str]
) -> tuple[list[str], str]:
    """Candidates narrowed by the task's experiment winner (``promoted``), if one was promoted,
    and the reason: the winner alone when it is still a candidate, else any arm but those it
    beat (or all of them, rather than none)."""
    if promoted is None:
        return candidates, ""  # none, or lifted by a drift for the worse (promotion.py)
    if promoted["arm"] in candidates:
        return [promoted["arm"]], (
            f"winner of experiment {promoted['experiment']!r} "
            f"({promoted['experiment_id']}), variant {promoted['variant']}; "
        )
    # withdrawn or over budget: anything but the arms it beat
    return [a for a in candidates if a not in promoted["losers"]] or candidates, ""


def screened(
    specs: Sequence[ArmSpec], breakers: BreakerStates, probe_rate: float, draw: Any
) -> tuple[list[str], list[SkippedArm], str]:
    """The candidates (``specs``: their arms) without the arms whose breaker stops them, those
    arms, and the reason."""
    kept, skipped = screen(specs, breakers, probe_rate, draw)
    if not skipped:
        return kept, [], ""
    if len(skipped) == len(specs):
        return kept, [], "every candidate's circuit breaker is open: none skipped; "
    names = ", ".join(f"{s.arm} ({s.breaker})" for s in skipped)
    return kept, skipped, f"circuit breaker skipped {names}; "
