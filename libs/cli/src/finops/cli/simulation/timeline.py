"""A simulation's timeline: what happened in each slice of simulated time, for the report.

Pure code (no I/O). Task outcomes fall in the bucket of their task's start (tasks are spread
evenly over the run, so a bucket is also a share of the fleet's work). Breaker states and
experiment progress are the platform's, polled while the fleet works; each sample is placed
at the share of the tasks done when it was taken.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from finops.cli.simulation.fleet import RUN_MS
from finops.cli.simulation.strategies import TaskOutcome

#: buckets a run is cut into unless told otherwise
DEFAULT_BUCKETS = 24


@dataclass
class Bucket:
    """One slice of simulated time: the spend and the calls of the tasks due in it.

    Examples
    --------
    >>> b = Bucket(index=0, start_min=0.0)
    >>> b.calls_per_model, b.optimized_cost_usd
    ({}, 0.0)
    """

    index: int
    start_min: float
    optimized_cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    #: answered calls of the optimized fleet per model, as provider/model
    calls_per_model: dict[str, int] = field(default_factory=dict)
    #: failed attempts of the optimized fleet per error kind
    errors_per_kind: dict[str, int] = field(default_factory=dict)
    #: recoverable errors the optimized fleet got past, per error kind
    healed_per_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BreakerState:
    """One breaker as ``GET /api/healing/circuits`` listed it."""

    provider: str
    model: str
    state: str
    failure_rate: float | None = None

    @property
    def arm(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class BreakerSample:
    """Every breaker's state at ``progress`` (share of the fleet's tasks done, 0..1)."""

    progress: float
    breakers: tuple[BreakerState, ...]


@dataclass(frozen=True)
class VariantProgress:
    """One variant of an experiment as its results listed it."""

    name: str
    n: int
    probability_best: float | None


@dataclass(frozen=True)
class ExperimentSample:
    """One experiment's results at ``progress`` (share of the fleet's tasks done, 0..1)."""

    progress: float
    experiment: str
    status: str
    variants: tuple[VariantProgress, ...]
    winner: str | None = None


@dataclass
class Timeline:
    """The whole run, bucket by bucket, with the platform's samples.

    Examples
    --------
    >>> t = Timeline.empty(buckets=4)
    >>> [b.start_min for b in t.buckets]
    [0.0, 30.0, 60.0, 90.0]
    >>> Timeline.from_json(t.as_json()) == t
    True
    """

    bucket_min: float
    buckets: list[Bucket]
    breakers: list[BreakerSample] = field(default_factory=list)
    experiments: list[ExperimentSample] = field(default_factory=list)

    @classmethod
    def empty(cls, buckets: int = DEFAULT_BUCKETS) -> Timeline:
        width_min = RUN_MS / 60_000 / buckets
        return cls(width_min, [Bucket(n, n * width_min) for n in range(buckets)])

    def _bucket_of(self, outcome: TaskOutcome) -> Bucket:
        n = int(outcome.task.start_ms / 60_000 / self.bucket_min)
        return self.buckets[min(max(n, 0), len(self.buckets) - 1)]

    def add_optimized(self, outcome: TaskOutcome) -> None:
        """Count one task of the optimized fleet."""
        bucket = self._bucket_of(outcome)
        bucket.optimized_cost_usd += outcome.cost_usd
        if outcome.answer is not None:
            _count(bucket.calls_per_model, outcome.answer.model.arm)
        for failure in outcome.failures:
            _count(bucket.errors_per_kind, failure.error.kind)
            if outcome.answer is not None and failure.error.recoverable:
                _count(bucket.healed_per_kind, failure.error.kind)

    def add_baseline(self, outcome: TaskOutcome) -> None:
        """Count one task of the baseline policy."""
        self._bucket_of(outcome).baseline_cost_usd += outcome.cost_usd

    def cumulative_spend(self) -> tuple[list[float], list[float]]:
        """(optimized, baseline) spend up to the end of each bucket."""
        optimized, baseline, opt_sum, base_sum = [], [], 0.0, 0.0
        for bucket in self.buckets:
            opt_sum += bucket.optimized_cost_usd
            base_sum += bucket.baseline_cost_usd
            optimized.append(opt_sum)
            baseline.append(base_sum)
        return optimized, baseline

    def models(self) -> list[str]:
        return sorted({m for b in self.buckets for m in b.calls_per_model})

    def error_kinds(self) -> list[str]:
        return sorted({k for b in self.buckets for k in b.errors_per_kind})

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        return cls(
            bucket_min=float(data["bucket_min"]),
            buckets=[Bucket(**b) for b in data["buckets"]],
            breakers=[
                BreakerSample(s["progress"], tuple(BreakerState(**b) for b in s["breakers"]))
                for s in data.get("breakers", [])
            ],
            experiments=[
                ExperimentSample(
                    progress=s["progress"],
                    experiment=s["experiment"],
                    status=s["status"],
                    variants=tuple(VariantProgress(**v) for v in s["variants"]),
                    winner=s.get("winner"),
                )
                for s in data.get("experiments", [])
            ],
        )


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
