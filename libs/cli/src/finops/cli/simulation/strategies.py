"""How an agent calls a provider and reacts to its errors: one interface, two strategies.

:class:`NaiveRetries` is the baseline: the same call again, a fixed pause apart, whatever
failed. :class:`Healing` is an offline stand-in for the healer's rules (the simulation's unit
tests use it): wait as long as a rate limit says and try again, move to another provider when
one keeps failing, move to a model with a larger context window when the prompt does not fit,
ask once more for malformed output, and never retry what cannot succeed. The live fleet heals
through the SDK's ``call()`` and the healer service instead (:mod:`.attempts`).

Waits are simulated time: a task's clock moves, nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from finops.cli.simulation.catalog import SimModel
from finops.cli.simulation.fleet import Task
from finops.cli.simulation.providers import (
    RETRYABLE_KINDS,
    Answer,
    ProviderError,
    SimulatedProviders,
)

#: remedies that make the same call again
SAME_CALL_AGAIN = frozenset({"retry", "wait"})


@dataclass(frozen=True)
class FailedAttempt:
    """One attempt that raised, and the remedy the strategy chose after it."""

    attempt: int
    model: SimModel
    at_ms: float
    error: ProviderError
    #: "retry", "wait", "fallback", "bigger_context", "trim", "repair", or "give_up"
    remedy: str


@dataclass(frozen=True)
class TaskOutcome:
    """What one task came to: its failed attempts, then the answer (``None``: it failed)."""

    task: Task
    failures: tuple[FailedAttempt, ...]
    answer: Answer | None

    @property
    def quality(self) -> float:
        return self.answer.quality if self.answer else 0.0

    @property
    def cost_usd(self) -> float:
        return self.answer.cost_usd if self.answer else 0.0

    @property
    def recoverable_errors(self) -> int:
        return sum(1 for f in self.failures if f.error.recoverable)

    @property
    def unrecoverable_retried(self) -> int:
        """Errors no remedy can get past (a refused prompt) whose same call was made again."""
        return sum(
            1 for f in self.failures if not f.error.recoverable and f.remedy in SAME_CALL_AGAIN
        )

    @property
    def healed(self) -> int:
        """Recoverable errors this task got past: all of them when it ended answered."""
        return self.recoverable_errors if self.answer else 0


class CallStrategy(Protocol):
    """Makes one task's call, attempt after attempt, until it answers or gives up."""

    @property
    def name(self) -> str: ...

    async def call(
        self, task: Task, model: SimModel, providers: SimulatedProviders
    ) -> TaskOutcome: ...


@dataclass(frozen=True)
class NaiveRetries:
    """The same model again after any error, ``pause_ms`` apart, ``attempts`` in all.

    Examples
    --------
    >>> NaiveRetries().attempts, NaiveRetries().pause_ms
    (3, 1000.0)
    """

    attempts: int = 3
    pause_ms: float = 1000.0
    name: str = "naive retries"

    async def call(self, task: Task, model: SimModel, providers: SimulatedProviders) -> TaskOutcome:
        at_ms = task.start_ms
        failures: list[FailedAttempt] = []
        for attempt in range(1, self.attempts + 1):
            try:
                answer = providers.attempt(task, model, attempt, at_ms)
            except ProviderError as error:
                last = attempt == self.attempts
                failures.append(
                    FailedAttempt(attempt, model, at_ms, error, "give_up" if last else "retry")
                )
                at_ms += error.latency_ms + self.pause_ms
                continue
            return TaskOutcome(task, tuple(failures), answer)
        return TaskOutcome(task, tuple(failures), None)


@dataclass(frozen=True)
class Healing:
    """Reacts to each error by its kind (see the module docstring).

    ``models`` are the models it may move to; a provider that failed ``fallback_after``
    times in a row on a retryable error is left for another provider's best model.
    """

    models: Sequence[SimModel]
    max_attempts: int = 6
    fallback_after: int = 2
    backoff_ms: float = 1000.0
    name: str = "healing"

    async def call(self, task: Task, model: SimModel, providers: SimulatedProviders) -> TaskOutcome:
        at_ms = task.start_ms
        failures: list[FailedAttempt] = []
        in_a_row = 0
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = providers.attempt(task, model, attempt, at_ms)
            except ProviderError as error:
                in_a_row = in_a_row + 1 if error.kind in RETRYABLE_KINDS else 0
                remedy, next_model, wait_ms = self._remedy(task, model, error, in_a_row)
                if attempt == self.max_attempts:
                    remedy = "give_up"
                failures.append(FailedAttempt(attempt, model, at_ms, error, remedy))
                if remedy == "give_up":
                    break
                if next_model is not model:
                    in_a_row = 0
                model = next_model
                at_ms += error.latency_ms + wait_ms
                continue
            return TaskOutcome(task, tuple(failures), answer)
        return TaskOutcome(task, tuple(failures), None)

    def _remedy(
        self, task: Task, model: SimModel, error: ProviderError, in_a_row: int
    ) -> tuple[str, SimModel, float]:
        """(remedy, the model to try next, how long to wait first)."""
        if error.kind in RETRYABLE_KINDS:
            if in_a_row >= self.fallback_after:
                other = self._best(task, lambda m: m.provider != model.provider)
                if other is not None:
                    return "fallback", other, 0.0
            if error.retry_after_ms is not None:
                return "wait", model, error.retry_after_ms
            return "retry", model, self.backoff_ms * 2 ** (in_a_row - 1)
        if error.kind == "context_length_exceeded":
            needed = task.input_tokens + task.output_tokens
            bigger = self._best(task, lambda m: m.context_window >= needed)
            return ("bigger_context", bigger, 0.0) if bigger else ("give_up", model, 0.0)
        if error.kind == "invalid_output":
            return "repair", model, 0.0
        return "give_up", model, 0.0

    def _best(self, task: Task, allowed: Callable[[SimModel], bool]) -> SimModel | None:
        """The best model on this task type that ``allowed`` keeps and the prompt fits."""
        fits = [
            m
            for m in self.models
            if allowed(m) and m.context_window >= task.input_tokens + task.output_tokens
        ]
        return max(fits, key=lambda m: m.quality[task.task_type.name], default=None)
