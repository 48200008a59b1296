"""One attempt of one call against a simulated provider, in simulated time.

An attempt either answers (:class:`Answer`) or raises :class:`ProviderError`, as a provider's
SDK would; its messages are the providers' own wordings, so the healer classifies them as it
classifies real ones. Only answered calls are billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finops.cli.simulation.catalog import SimModel
from finops.cli.simulation.drift_targets import DriftTargets
from finops.cli.simulation.faults import FaultSchedule
from finops.cli.simulation.fleet import Task, run_fraction
from finops.common.events import price_call

#: kinds an agent can recover from: wait and retry, switch model, or ask again (repair)
RETRYABLE_KINDS = frozenset({"rate_limit", "overloaded", "server_error", "timeout"})
RECOVERABLE_KINDS = RETRYABLE_KINDS | {"context_length_exceeded", "invalid_output"}


@dataclass(frozen=True)
class Answer:
    """A call that answered: what it used, cost, took and was worth."""

    model: SimModel
    input_tokens: int
    output_tokens: int
    latency_ms: float
    quality: float
    cost_usd: float


class ProviderError(Exception):
    """A failed attempt, as the provider reported it.

    Shaped like the providers' SDK exceptions (``status``, ``body``, ``headers``), so a
    strategy built on the FinOps SDK's self-healing ``call()`` reads it as it reads theirs.
    """

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        latency_ms: float,
        retry_after_ms: float | None = None,
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.latency_ms = latency_ms
        self.retry_after_ms = retry_after_ms
        self.provider_code = provider_code

    @property
    def recoverable(self) -> bool:
        return self.kind in RECOVERABLE_KINDS

    @property
    def body(self) -> dict[str, Any]:
        """The error body as the provider's SDK exposes it (``exc.body``)."""
        error = {"message": self.message, "code": self.provider_code}
        return {"error": {k: v for k, v in error.items() if v is not None}}

    @property
    def headers(self) -> dict[str, str]:
        """The response headers that matter for a remedy (``exc.headers``).

        Examples
        --------
        >>> ProviderError("rate_limit", 429, "slow down", latency_ms=5, retry_after_ms=2500).headers
        {'retry-after-ms': '2500'}
        """
        if self.retry_after_ms is None:
            return {}
        return {"retry-after-ms": str(round(self.retry_after_ms))}


class SimulatedProviders:
    """Every simulated provider, faulting as the schedule says."""

    def __init__(self, schedule: FaultSchedule) -> None:
        self.schedule = schedule
        #: the quality drifts and the models they land on
        self.drifts = DriftTargets(schedule.drifts)

    def attempt(self, task: Task, model: SimModel, attempt: int, at_ms: float) -> Answer:
        """Attempt number ``attempt`` (1, 2, ...) of ``task`` on ``model`` at ``at_ms``."""
        draws = task.draws(attempt)
        fraction = run_fraction(at_ms)
        full_ms = model.latency.latency_ms(task.output_tokens, draws.z_ttft, draws.z_itl)
        self._raise_fault(task, model, fraction, draws.fault, draws.wait, full_ms)
        task_type, task_at = task.task_type.name, run_fraction(task.start_ms)
        right = max(
            0.0,
            model.quality[task_type] - self.drifts.quality_drop(model.name, task_type, task_at),
        )
        self.drifts.answered(model.name, task_type, task_at)
        usage = {"input_tokens": task.input_tokens, "output_tokens": task.output_tokens}
        cost = price_call(model.provider, model.name, usage).total_usd
        if cost is None:
            raise ValueError(f"genai-prices has no price for {model.arm}")
        return Answer(
            model,
            task.input_tokens,
            task.output_tokens,
            full_ms,
            1.0 if draws.quality < right else 0.0,
            cost,
        )

    def _raise_fault(
        self, task: Task, model: SimModel, fraction: float, u: float, wait: float, full_ms: float
    ) -> None:
        quick_ms = full_ms * 0.1
        schedule = self.schedule
        if schedule.is_down(model.provider, fraction):
            raise ProviderError(
                "overloaded",
                503,
                "Service Unavailable: the server is temporarily unable to handle the request",
                latency_ms=quick_ms,
                provider_code="overloaded_error",
            )
        needed = task.input_tokens + task.output_tokens
        if needed > model.context_window:
            raise ProviderError(
                "context_length_exceeded",
                400,
                f"This model's maximum context length is {model.context_window} tokens. "
                f"However, your messages resulted in {needed} tokens. Please reduce the length "
                "of the messages.",
                latency_ms=quick_ms,
                provider_code="context_length_exceeded",
            )
        storm = schedule.storm_for(model.provider, fraction)
        if storm and u < storm.share:
            low, high = storm.retry_after_ms
            after_ms = round(low + wait * (high - low))
            raise ProviderError(
                "rate_limit",
                429,
                f"Rate limit reached for {model.name} on requests per min (RPM): Limit 500, "
                f"Used 500, Requested 1. Please try again in {after_ms / 1000:.3f}s.",
                latency_ms=quick_ms,
                retry_after_ms=after_ms,
                provider_code="rate_limit_exceeded",
            )
        edge = 1.0 - schedule.server_error_share
        if u >= edge:
            raise ProviderError(
                "server_error",
                500,
                "The server had an error while processing your request. Sorry about that!",
                latency_ms=full_ms,
                provider_code="server_error",
            )
        edge -= schedule.malformed_share
        if u >= edge:
            raise ProviderError(
                "invalid_output",
                500,
                "The model produced invalid content. Consider modifying your prompt if you are "
                "seeing this error persistently.",
                latency_ms=full_ms,
                provider_code="model_error",
            )
        if task.draws(0).fault < schedule.refusal_share:  # the prompt itself: every attempt
            raise ProviderError(
                "content_policy",
                400,
                "Invalid prompt: your prompt was flagged as potentially violating our usage "
                "policy.",
                latency_ms=quick_ms,
                provider_code="invalid_prompt",
            )
