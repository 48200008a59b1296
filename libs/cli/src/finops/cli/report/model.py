"""What a report holds, built from a simulation's result (``finops simulate --json``'s object)
and its timeline; ``finops report`` adds the platform's own figures read from its APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finops.cli.simulation.drift_findings import DriftFindings, figure_value
from finops.cli.simulation.timeline import Timeline


@dataclass(frozen=True)
class Figure:
    """One row of a summary table: what it is, its value, and what it is compared with.

    Examples
    --------
    >>> Figure("saving", "42.0%", "vs the strongest model everywhere").label
    'saving'
    """

    label: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class ExperimentRow:
    """An experiment of the run, as the report's table lists it."""

    name: str
    kind: str
    decision: str
    winner: str | None
    promoted: bool
    samples: tuple[int, ...]
    #: why it ended as it did, when the run or the service said (an A/A test the run
    #: stopped: no winner, as it should)
    reason: str | None = None
    #: promoted, then unpinned by a drift of the winner for the worse
    pin_lifted: bool = False
    #: calls per variant answered after a fallback (counted in ``samples``); none in the
    #: result of a run before the count
    fallbacks: tuple[int, ...] = ()
    #: the optimizer recommended the winner at the end; None in the result of a run before
    #: it was said
    pinned_at_end: bool | None = None


@dataclass
class Report:
    """Everything the HTML page shows."""

    title: str
    generated_at: datetime
    summary: list[Figure]
    experiments: list[ExperimentRow]
    timeline: Timeline
    #: the platform's own figures (``finops report``: read from the services' APIs)
    platform: list[Figure] = field(default_factory=list)
    #: where the figures come from, said under the title
    source: str = ""


def summary_figures(result: dict[str, Any]) -> list[Figure]:
    """The summary table of a simulation's result.

    Examples
    --------
    >>> rows = summary_figures({"saving": 0.4, "quality_ratio": 0.97, "healed_ratio": 1.0,
    ...     "healed": 9, "recoverable_errors": 9, "lost_events": 0, "events_sent": 120,
    ...     "optimized_cost_usd": 0.6, "baseline_cost_usd": 1.0, "optimized_quality": 0.8,
    ...     "baseline_quality": 0.82, "calls": 100, "agents": 2, "seed": 7})
    >>> [(r.label, r.value) for r in rows[:3]]
    [('saving', '40.0%'), ('quality ratio', '0.970'), ('healed ratio', '100.0%')]
    """
    return [
        Figure(
            "saving",
            f"{result['saving']:.1%}",
            f"${result['optimized_cost_usd']:.4f} spent vs ${result['baseline_cost_usd']:.4f} "
            "for the baseline (strongest model, naive retries)",
        ),
        Figure(
            "quality ratio",
            f"{result['quality_ratio']:.3f}",
            f"mean quality {result['optimized_quality']:.3f} vs {result['baseline_quality']:.3f}",
        ),
        Figure(
            "healed ratio",
            f"{result['healed_ratio']:.1%}",
            f"{result['healed']} of {result['recoverable_errors']} recoverable errors healed",
        ),
        Figure(
            "lost events",
            str(result["lost_events"]),
            f"of {result['events_sent']:,} acknowledged by ingest",
        ),
        *drift_figures(result),
        Figure(
            "run",
            f"{result['calls']:,} tasks",
            f"{result['agents']} agents, seed {result['seed']}",
        ),
    ]


def drift_figures(result: dict[str, Any]) -> list[Figure]:
    """A row per injected drift (noticed or not, by a drift alert of the run), and one of
    the run's other drift alerts; none for the result of a run before they were reported.

    Examples
    --------
    >>> rows = drift_figures({"drifts": [{"model": "m", "task_type": "qa", "injected_at": 0.5,
    ...     "noticed": True, "noticed_at": 0.56}], "other_drift_alerts": []})
    >>> [(r.label, r.value) for r in rows]
    [('drift of m on qa', 'noticed at 56 %'), ('other drift alerts', '0')]
    """
    found = DriftFindings.from_json(result)
    if found is None:
        return []
    rows = [
        Figure(
            f"drift of {d.model} on {d.task_type}",
            figure_value(d),
            "; ".join(part for part in (d.where(of_the_run=True), d.served()) if part),
        )
        for d in found.drifts
    ]
    if found.others is not None:
        rows.append(
            Figure(
                "other drift alerts",
                str(len(found.others)),
                ", ".join(f"{o.what} of {o.subject}" for o in found.others),
            )
        )
    return rows


def experiment_rows(result: dict[str, Any]) -> list[ExperimentRow]:
    return [
        ExperimentRow(
            e["name"],
            e["kind"],
            e["decision"],
            e.get("winner"),
            bool(e["promoted"]),
            tuple(e.get("samples") or ()),
            e.get("reason"),
            bool(e.get("pin_lifted")),
            tuple(e.get("fallbacks") or ()),
            e.get("pinned_at_end") if isinstance(e.get("pinned_at_end"), bool) else None,
        )
        for e in result.get("experiments", [])
    ]


def from_simulation(
    result: dict[str, Any], timeline: Timeline, generated_at: datetime, source: str
) -> Report:
    """The report of one simulation run."""
    return Report(
        title="Meta-Agent FinOps: fleet simulation report",
        generated_at=generated_at,
        summary=summary_figures(result),
        experiments=experiment_rows(result),
        timeline=timeline,
        source=source,
    )
