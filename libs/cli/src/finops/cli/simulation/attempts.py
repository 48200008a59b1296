"""One task's attempts as an agent's LLM call, for the SDK's self-healing ``call()``.

:class:`TaskAttempts` is the ``fn`` an agent hands to ``call()``: each call is the next
attempt of the task against the simulated provider of the model the SDK names (after a
fallback, another one), on the prompt as trimmed so far, at the task's simulated time.
:class:`TaskClock` is the clock the SDK reads and waits on: an attempt moves it by its
latency, a wait the healer advises by the wait; nothing sleeps. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from finops.cli.simulation.catalog import STRONGEST, SimModel, serving
from finops.cli.simulation.fleet import Task
from finops.cli.simulation.providers import Answer, ProviderError, SimulatedProviders
from finops.cli.simulation.strategies import FailedAttempt, TaskOutcome


@dataclass
class TaskClock:
    """A task's simulated time, in the SDK's clock interface (seconds).

    Examples
    --------
    >>> clock = TaskClock(start_ms=1_000.0)
    >>> clock.sleep(2.5)
    >>> clock.now(), clock.at_ms
    (3.5, 3500.0)
    """

    start_ms: float
    at_ms: float = 0.0

    def __post_init__(self) -> None:
        self.at_ms = self.start_ms

    def now(self) -> float:
        return self.at_ms / 1000.0

    def sleep(self, seconds: float) -> None:
        self.at_ms += seconds * 1000.0


@dataclass(frozen=True)
class Attempt:
    """What one attempt was made with."""

    model: SimModel
    input_tokens: int
    params: dict[str, Any]
    at_ms: float


@dataclass
class TaskAttempts:
    """The agent's LLM call for one task: every call is its next attempt."""

    task: Task
    providers: SimulatedProviders
    clock: TaskClock = field(init=False)
    input_tokens: int = field(init=False)
    made: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = TaskClock(self.task.start_ms)
        self.input_tokens = self.task.input_tokens

    def __call__(self, *, provider: str, model: str, **params: Any) -> Answer:
        try:
            sim_model = serving(provider, model)
        except KeyError:  # no provider serves it: fail as a provider fails an unknown model
            unserved = SimModel(provider, model, 0, STRONGEST.latency, {})
            self.made.append(Attempt(unserved, self.input_tokens, params, self.clock.at_ms))
            error = ProviderError(
                "model_not_found",
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                latency_ms=50.0,
                provider_code="model_not_found",
            )
            self.errors.append(error)
            raise error from None
        self.made.append(Attempt(sim_model, self.input_tokens, params, self.clock.at_ms))
        prompt = replace(self.task, input_tokens=self.input_tokens)
        try:
            answer = self.providers.attempt(prompt, sim_model, len(self.made), self.clock.at_ms)
        except ProviderError as error:
            self.errors.append(error)
            self.clock.sleep(error.latency_ms / 1000.0)
            raise
        self.clock.sleep(answer.latency_ms / 1000.0)
        return answer

    def trim(self, max_input_tokens: int) -> None:
        """The agent's trim hook: shorten the prompt to ``max_input_tokens``."""
        self.input_tokens = min(self.input_tokens, max_input_tokens)

    def outcome(self, answer: Answer | None) -> TaskOutcome:
        """The task's outcome, each failure named by what the next attempt changed."""
        failures = []
        for number, (made, error) in enumerate(zip(self.made, self.errors, strict=False), 1):
            after = self.made[number] if number < len(self.made) else None
            remedy = _remedy(made, after)
            failures.append(FailedAttempt(number, made.model, made.at_ms, error, remedy))
        return TaskOutcome(self.task, tuple(failures), answer)


def _remedy(failed: Attempt, after: Attempt | None) -> str:
    """What the agent did after ``failed``: the attempt that followed tells."""
    if after is None:
        return "give_up"
    if after.model is not failed.model:
        return "fallback"
    if after.input_tokens < failed.input_tokens:
        return "trim"
    if after.params != failed.params:
        return "repair"
    return "retry"
