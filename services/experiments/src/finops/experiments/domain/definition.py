"""What an experiment is, the rules a definition must follow, and its life cycle. Pure.

Every rule broken raises an :class:`ExperimentError` whose ``code`` is stable for API clients
(the API layer, :mod:`finops.common.api_errors`, answers it with a 4xx carrying that code).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Self

from finops.common.errors import Conflict, NotFound, ValidationFailed
from finops.experiments.domain.decision import DEFAULT_MAX_SUCCESS_RATE_DROP, AnalysisSettings

Allocation = Literal["fixed", "bandit"]
Status = Literal["draft", "running", "stopped", "decided"]
WEIGHT_TOLERANCE = 1e-6
DEFAULT_MAX_DURATION_S = 14 * 24 * 3600.0


class ExperimentError(ValidationFailed):
    """Base of the experiments' domain errors: a definition breaking a rule, unless a subclass
    is also a :class:`NotFound` or :class:`Conflict`."""

    code = "experiment_error"

    @classmethod
    def at(cls, fields: list[str], message: str) -> Self:
        """The error naming the fields of the body it is about, in the shape of the
        ``validation_error`` details: ``[{field, message, type}]`` (``type``: the code)."""
        details = [{"field": f, "message": message, "type": cls.code} for f in fields]
        return cls(message, details=details)


class UnknownTaskType(ExperimentError):
    code = "unknown_task_type"


class TooFewVariants(ExperimentError):
    code = "too_few_variants"


class DuplicateVariantNames(ExperimentError):
    code = "duplicate_variant_names"


class WeightsDoNotSumToOne(ExperimentError):
    code = "weights_not_summing_to_one"


class AlphaOutOfRange(ExperimentError):
    code = "alpha_out_of_range"


class ExperimentNotFound(NotFound, ExperimentError):
    code = "experiment_not_found"


class NameTaken(Conflict, ExperimentError):
    code = "experiment_name_taken"


class InvalidTransition(Conflict, ExperimentError):
    code = "invalid_status_transition"


class NotRunning(Conflict, ExperimentError):
    code = "experiment_not_running"


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    provider: str
    config: dict[str, Any] = field(default_factory=dict)
    weight: float = 0.0


@dataclass(frozen=True)
class Guardrails:
    """What stops a treatment winning, or stops the experiment (``None``: that guardrail is
    off). ``max_success_rate_drop`` is on by default: a definition stored before that default
    holds its ``None`` explicitly, so it keeps running as it was defined."""

    min_quality_ratio: float = 0.95
    max_p95_latency_ms: float | None = None
    max_success_rate_drop: float | None = DEFAULT_MAX_SUCCESS_RATE_DROP


@dataclass(frozen=True)
class Definition:
    """An experiment as its operator defined it; the first variant is the control."""

    name: str
    task_type: str
    variants: tuple[Variant, ...]
    allocation: Allocation = "fixed"
    metric: Literal["cost_per_success", "cost", "quality"] = "cost_per_success"
    guardrails: Guardrails = Guardrails()
    min_samples: int = 100
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    alpha: float = 0.05

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def analysis_settings(self) -> AnalysisSettings:
        return AnalysisSettings(
            metric=self.metric,
            alpha=self.alpha,
            min_samples=self.min_samples,
            min_quality_ratio=self.guardrails.min_quality_ratio,
            max_p95_latency_ms=self.guardrails.max_p95_latency_ms,
            max_success_rate_drop=self.guardrails.max_success_rate_drop,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [asdict(v) for v in self.variants]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Definition:
        return cls(
            name=data["name"],
            task_type=data["task_type"],
            variants=tuple(Variant(**v) for v in data["variants"]),
            allocation=data["allocation"],
            metric=data["metric"],
            guardrails=Guardrails(**data["guardrails"]),
            min_samples=data["min_samples"],
            max_duration_s=data["max_duration_s"],
            alpha=data["alpha"],
        )


def build_definition(
    *,
    name: str,
    task_type: str,
    variants: list[dict[str, Any]],
    known_task_types: set[str] | frozenset[str],
    allocation: Allocation = "fixed",
    metric: Literal["cost_per_success", "cost", "quality"] = "cost_per_success",
    guardrails: Guardrails | None = None,
    min_samples: int = 100,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    alpha: float = 0.05,
) -> Definition:
    """A checked definition. Weights left out everywhere mean an equal split.

    A task type is *known* once the platform has seen a cost event for it: an experiment on
    a task type no agent runs would never get a result.
    """
    if task_type not in known_task_types:
        raise UnknownTaskType.at(
            ["task_type"],
            f"task type {task_type!r} has not been seen on agent.cost.v1; an experiment needs "
            "live traffic of its task type",
        )
    if len(variants) < 2:
        raise TooFewVariants.at(
            ["variants"], "an experiment needs at least two variants (the first is control)"
        )
    names = [v["name"] for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DuplicateVariantNames.at(
            [f"variants.{i}.name" for i, n in enumerate(names) if n in names[:i]],
            f"variant names must be unique: {', '.join(duplicates)}",
        )
    given = [v.get("weight") for v in variants]
    if all(w is None for w in given):
        weights = [1.0 / len(variants)] * len(variants)
    elif any(w is None for w in given):
        raise WeightsDoNotSumToOne.at(
            [f"variants.{i}.weight" for i, w in enumerate(given) if w is None],
            "give a weight to every variant, or to none (equal split)",
        )
    else:
        weights = [float(w) for w in given if w is not None]
        if any(w <= 0 for w in weights) or not math.isclose(
            sum(weights), 1.0, abs_tol=WEIGHT_TOLERANCE
        ):
            not_positive = [i for i, w in enumerate(weights) if w <= 0]
            raise WeightsDoNotSumToOne.at(
                [f"variants.{i}.weight" for i in not_positive or range(len(weights))],
                f"weights must be positive and sum to 1 (they sum to {sum(weights):g})",
            )
    if not 0.0 < alpha <= 0.5:
        raise AlphaOutOfRange.at(["alpha"], f"alpha must be in (0, 0.5], got {alpha:g}")
    return Definition(
        name=name,
        task_type=task_type,
        variants=tuple(
            Variant(v["name"], v["model"], v["provider"], dict(v.get("config") or {}), w)
            for v, w in zip(variants, weights, strict=True)
        ),
        allocation=allocation,
        metric=metric,
        guardrails=guardrails or Guardrails(),
        min_samples=min_samples,
        max_duration_s=max_duration_s,
        alpha=alpha,
    )


# Which operator action moves a status where; the analysis itself moves running → decided or
# running → stopped.
TRANSITIONS: dict[str, dict[str, str]] = {
    "start": {"draft": "running"},
    "stop": {"draft": "stopped", "running": "stopped"},
}


def transition(action: str, status: str) -> str:
    target = TRANSITIONS[action].get(status)
    if target is None:
        raise InvalidTransition(f"cannot {action} an experiment that is {status}")
    return target
