"""An experiment's conclusion: what the analysis reached (a winner, or a stop with none), what
PostgreSQL keeps of it, and the same conclusion again from that record. Pure: plain data for
the records, the checkpoints and ``finops.experiments.v1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finops.experiments.domain.definition import Definition

#: the reason of the conclusion of an experiment an operator stopped
OPERATOR_STOP = "stopped by an operator"
#: what PostgreSQL keeps of a conclusion (the experiment's ``decision``)
RECORDED = ("winner", "reason", "decided_at", "winner_arm", "n")


def conclusion_of(
    experiment_id: str,
    definition: Definition,
    winner: str | None,
    reason: str,
    decided_at: str,
    n: Sequence[int],
) -> dict[str, Any]:
    """The conclusion of an experiment (announced on ``finops.experiments.v1`` as a
    ``decision``): ``winner``, the name of the variant that won, or None for a stop."""
    arm = next((v for v in definition.variants if v.name == winner), None)
    return {
        "experiment_id": experiment_id,
        "name": definition.name,
        "task_type": definition.task_type,
        "status": "decided" if arm else "stopped",
        "winner": arm.name if arm else None,
        "reason": reason,
        "decided_at": decided_at,
        "winner_arm": (
            {"model": arm.model, "provider": arm.provider, "config": arm.config} if arm else None
        ),
        "losers": [
            {"name": v.name, "model": v.model, "provider": v.provider, "config": v.config}
            for v in definition.variants
            if arm is not None and v.name != arm.name
        ],
        "n": [int(x) for x in n],
    }


def is_operator_stop(conclusion: dict[str, Any]) -> bool:
    """Whether the conclusion is an operator's stop the analysis saw
    (:meth:`ExperimentAnalysis.halt`)."""
    return conclusion["winner"] is None and conclusion["reason"] == OPERATOR_STOP


def stop_record(stopped_at: str, counts: Sequence[int]) -> dict[str, Any]:
    """An operator's stop as a recorded decision of no winner (:func:`recorded_decision`),
    dated at the stop, with the calls the analysis had counted when it saw it: what a replay
    counts the experiment's calls up to (:meth:`ExperimentAnalysis.track_recorded`).

    Examples
    --------
    >>> stop_record("2026-12-07T01:00:00+00:00", [40, 38])["n"]
    [40, 38]
    """
    return {
        "winner": None,
        "reason": OPERATOR_STOP,
        "decided_at": stopped_at,
        "winner_arm": None,
        "n": [int(x) for x in counts],
    }


def recorded_decision(conclusion: dict[str, Any]) -> dict[str, Any]:
    """What PostgreSQL keeps of a conclusion: enough to announce the same one again
    (:func:`conclusion_from_record`)."""
    return {k: conclusion[k] for k in RECORDED}


def conclusion_from_record(
    experiment_id: str,
    definition: Definition,
    recorded: dict[str, Any],
    counted: Sequence[int] = (),
) -> dict[str, Any]:
    """The conclusion a recorded decision was made from (:func:`recorded_decision`), the
    same again; ``counted``: its counts when the record has none (recorded by a version
    that kept none).

    Examples
    --------
    >>> from finops.experiments.domain.definition import build_definition
    >>> d = build_definition(name="e", task_type="t", known_task_types={"t"}, variants=[
    ...     {"name": "A", "model": "big", "provider": "p"},
    ...     {"name": "B", "model": "small", "provider": "p"}])
    >>> c = conclusion_of("x", d, "B", "B is cheaper", "2026-12-02T08:00:00+00:00", [9, 8])
    >>> conclusion_from_record("x", d, recorded_decision(c)) == c
    True
    """
    return conclusion_of(
        experiment_id,
        definition,
        recorded.get("winner"),
        str(recorded.get("reason", "")),
        str(recorded.get("decided_at", "")),
        recorded.get("n", counted),
    )
