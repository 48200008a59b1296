"""The fault schedule: what goes wrong, where and when, in simulated time.

Windows are fractions of the run (0 = its start, 1 = its end), so the same schedule fits a
short test run and a long demo. Context overflows are not scheduled: they happen whenever a
task's prompt does not fit the chosen model's window (see ``TaskType.long_prompt_share``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A part of the run, ``start <= fraction < end``.

    Examples
    --------
    >>> Window(0.3, 0.4).holds(0.35), Window(0.3, 0.4).holds(0.4)
    (True, False)
    """

    start: float
    end: float

    def holds(self, fraction: float) -> bool:
        return self.start <= fraction < self.end


@dataclass(frozen=True)
class RateLimitStorm:
    """A provider answers 429 to ``share`` of the attempts, with a Retry-After header."""

    provider: str
    window: Window
    share: float
    retry_after_ms: tuple[float, float] = (1_000.0, 20_000.0)


@dataclass(frozen=True)
class Outage:
    """A provider answers 503 (overloaded) to every attempt for a while."""

    provider: str
    window: Window


@dataclass(frozen=True)
class QualityDrift:
    """From ``start`` on, a model's answers on a task type are right ``drop`` less often (in
    every attempt of the tasks that start from then on).

    With ``follow_traffic``, the model is the one the fleet relies on for the task type when
    the drift starts, ``model`` only if the task type had no answered call by then
    (:class:`~finops.cli.simulation.drift_targets.DriftTargets`).
    """

    model: str
    task_type: str
    start: float
    drop: float
    follow_traffic: bool = False


@dataclass(frozen=True)
class FaultSchedule:
    """Every fault of one run. Shares are per attempt, drawn from the attempt's own numbers."""

    storms: tuple[RateLimitStorm, ...] = ()
    outages: tuple[Outage, ...] = ()
    drifts: tuple[QualityDrift, ...] = ()
    #: attempts whose output is malformed (a 500 ``model_error``), any model, any time
    malformed_share: float = 0.0
    #: prompts a content filter refuses (every attempt of them; not recoverable)
    refusal_share: float = 0.0
    #: attempts that fail with a plain 500, any model, any time
    server_error_share: float = 0.0

    def storm_for(self, provider: str, fraction: float) -> RateLimitStorm | None:
        return next(
            (s for s in self.storms if s.provider == provider and s.window.holds(fraction)), None
        )

    def is_down(self, provider: str, fraction: float) -> bool:
        return any(o.provider == provider and o.window.holds(fraction) for o in self.outages)


def default_schedule() -> FaultSchedule:
    """The faults ``finops simulate`` injects unless told otherwise."""
    return FaultSchedule(
        storms=(RateLimitStorm("openai", Window(0.30, 0.40), share=0.5),),
        outages=(Outage("anthropic", Window(0.60, 0.70)),),
        drifts=(QualityDrift("gpt-4o-mini", "extract", start=0.5, drop=0.3, follow_traffic=True),),
        malformed_share=0.01,
        refusal_share=0.002,
        server_error_share=0.005,
    )


NO_FAULTS = FaultSchedule()

__all__ = [
    "NO_FAULTS",
    "FaultSchedule",
    "Outage",
    "QualityDrift",
    "RateLimitStorm",
    "Window",
    "default_schedule",
]
