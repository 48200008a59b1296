"""What one policy's run cost and earned, and the comparison of two runs over the same tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from finops.cli.simulation.catalog import SimModel
from finops.cli.simulation.fleet import Task
from finops.cli.simulation.providers import SimulatedProviders
from finops.cli.simulation.strategies import CallStrategy, TaskOutcome


@dataclass
class PolicyTally:
    """Running totals of one policy's task outcomes.

    Examples
    --------
    >>> t = PolicyTally()
    >>> t.tasks, t.mean_quality, t.healed_ratio
    (0, 0.0, 1.0)
    """

    tasks: int = 0
    answered: int = 0
    cost_usd: float = 0.0
    quality_sum: float = 0.0
    errors: int = 0
    recoverable_errors: int = 0
    healed: int = 0
    #: non-recoverable errors that were tried again (the healer should abort them at once)
    unrecoverable_retried: int = 0

    def add(self, outcome: TaskOutcome) -> None:
        self.tasks += 1
        self.answered += outcome.answer is not None
        self.cost_usd += outcome.cost_usd
        self.quality_sum += outcome.quality
        self.errors += len(outcome.failures)
        self.recoverable_errors += outcome.recoverable_errors
        self.healed += outcome.healed
        self.unrecoverable_retried += outcome.unrecoverable_retried

    @property
    def mean_quality(self) -> float:
        """Mean quality per task; a task that never got an answer counts 0."""
        return self.quality_sum / self.tasks if self.tasks else 0.0

    @property
    def healed_ratio(self) -> float:
        """Share of the recoverable errors the task got past (1 when there were none)."""
        return self.healed / self.recoverable_errors if self.recoverable_errors else 1.0


@dataclass(frozen=True)
class Comparison:
    """The optimized run against the baseline over the same tasks, draws and faults."""

    baseline: PolicyTally
    optimized: PolicyTally

    @property
    def saving(self) -> float:
        """Share of the baseline's spend the optimized run did not spend."""
        if not self.baseline.cost_usd:
            return 0.0
        return 1.0 - self.optimized.cost_usd / self.baseline.cost_usd

    @property
    def quality_ratio(self) -> float:
        if not self.baseline.mean_quality:
            return 0.0
        return self.optimized.mean_quality / self.baseline.mean_quality


async def run_fixed_policy(
    tasks: list[Task],
    model: SimModel,
    strategy: CallStrategy,
    providers: SimulatedProviders,
    observe: Callable[[TaskOutcome], None] | None = None,
) -> PolicyTally:
    """Every task on ``model`` through ``strategy``, offline (nothing is sent anywhere);
    ``observe`` sees each task's outcome (the report's timeline)."""
    tally = PolicyTally()
    for task in tasks:
        outcome = await strategy.call(task, model, providers)
        tally.add(outcome)
        if observe is not None:
            observe(outcome)
    return tally
