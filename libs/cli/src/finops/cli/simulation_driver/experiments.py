"""The experiments ``finops simulate`` runs on the platform: their plans, the state of one
started for a run, and what became of it (the calls that start, follow and stop them are
:class:`finops.cli.simulation_driver.platform.OperatorApi`'s)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from finops.cli.simulation.catalog import CLAUDE_HAIKU, GPT_4O, GPT_4O_MINI, SimModel


@dataclass(frozen=True)
class ExperimentPlan:
    """An experiment the simulator runs: ``kind`` is "cheaper_variant" or "a_a"."""

    kind: str
    task_type: str
    control: SimModel
    treatment: SimModel

    def serves(self, input_tokens: int) -> bool:
        """Whether a prompt of ``input_tokens`` fits every variant's context window.

        An experiment compares its variants on the requests each of them can serve: a prompt
        beyond a variant's window measures the healer's trim, not the variant, and one
        130k-token prompt that lands on the dear variant by the unit's hash weighs as much as
        dozens of ordinary calls. The agent asks the optimizer for such a prompt instead.

        Examples
        --------
        >>> plan = ExperimentPlan("cheaper_variant", "summarize", GPT_4O, GPT_4O_MINI)
        >>> plan.serves(3_000), plan.serves(130_000)
        (True, False)
        """
        return all(input_tokens <= m.context_window for m in (self.control, self.treatment))


PLANS = (
    ExperimentPlan("cheaper_variant", "summarize", GPT_4O, GPT_4O_MINI),
    ExperimentPlan("a_a", "knowledge", CLAUDE_HAIKU, CLAUDE_HAIKU),
)


@dataclass
class RunningExperiment:
    """An experiment started for this run; ``running`` turns false once assignment refuses
    (or the analysis decided it), ``stopped`` once the run stopped it at its end."""

    plan: ExperimentPlan
    id: str
    name: str
    running: bool = True
    tagged_events: int = 0
    stopped: bool = False
    #: the service refused to stop it: the analysis had decided it (or an operator stopped it)
    ended: bool = False
    #: the optimizer was seen recommending its winner (a drift may lift the pin later)
    promoted_seen: bool = False


@dataclass
class ExperimentOutcome:
    """What became of an experiment by the end of the run."""

    name: str
    kind: str
    task_type: str
    id: str
    status: str
    winner: str | None
    promoted: bool
    samples: list[int] = field(default_factory=list)
    #: why it did not start or decide, when the service said
    reason: str | None = None
    #: promoted, then unpinned by the end by a drift of the winner for the worse: a drift
    #: alert of the run names the experiment (``unpinned_experiment_id``); None when the
    #: alerts could not be read
    pin_lifted: bool | None = False
    #: the optimizer recommended the winner at the end (False also when it was never
    #: promoted)
    pinned_at_end: bool = False
    #: calls per variant answered after a fallback (counted in its samples)
    fallbacks: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "task_type": self.task_type,
            "id": self.id,
            "decision": self.status,
            "winner": self.winner,
            "promoted": self.promoted,
            "pin_lifted": self.pin_lifted,
            "pinned_at_end": self.pinned_at_end,
            "samples": self.samples,
            "fallbacks": self.fallbacks,
            "reason": self.reason,
        }


def with_lifted_pin(outcome: ExperimentOutcome, lifted: bool | None) -> ExperimentOutcome:
    """``outcome`` with whether a drift alert of the run lifted its winner's pin (``lifted``:
    None when the alerts could not be read): only a winner promoted and no longer pinned at
    the end can have had its pin lifted.

    Examples
    --------
    >>> unpinned = ExperimentOutcome("e", "cheaper_variant", "qa", "x1", "decided", "B", True)
    >>> with_lifted_pin(unpinned, True).pin_lifted, with_lifted_pin(unpinned, False).pin_lifted
    (True, False)
    >>> pinned = replace(unpinned, pinned_at_end=True)
    >>> with_lifted_pin(pinned, True).pin_lifted
    False
    """
    if not outcome.promoted or outcome.pinned_at_end:
        return replace(outcome, pin_lifted=False)
    return replace(outcome, pin_lifted=lifted)


def stopped_at_the_end(outcome: ExperimentOutcome) -> ExperimentOutcome:
    """``outcome`` (an experiment still running when the run ended) as the run stopped it.

    Examples
    --------
    >>> running = ExperimentOutcome("e", "a_a", "knowledge", "x1", "running", None, False)
    >>> stopped = stopped_at_the_end(running)
    >>> stopped.status, stopped.reason
    ('stopped', 'stopped at the end of the run, no winner, as an A/A test should')
    """
    if outcome.kind == "a_a":
        why = "stopped at the end of the run, no winner, as an A/A test should"
    else:
        why = "stopped at the end of the run before the analysis decided"
    return replace(outcome, status="stopped", reason=why)


class ExperimentNotStarted(Exception):
    """The experiments service still did not know the task type at the deadline."""

    def __init__(self, plan: ExperimentPlan, name: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = ExperimentOutcome(
            name, plan.kind, plan.task_type, "", "not_started", None, False, reason=reason
        )
