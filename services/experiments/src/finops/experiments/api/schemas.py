"""Response bodies of the experiments API, so that OpenAPI documents every answer.

Each model describes a dict the domain or the repository builds, field by field and in the same
order (see :mod:`finops.common.response_body`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from finops.common.response_body import Real, ResponseBody

Metric = Literal["cost_per_success", "cost", "quality"]


class VariantOut(ResponseBody):
    name: str
    model: str
    provider: str
    config: dict[str, Any]
    weight: Real


class GuardrailsOut(ResponseBody):
    min_quality_ratio: Real
    max_p95_latency_ms: Real | None
    max_success_rate_drop: Real | None


class ExperimentOut(ResponseBody):
    id: str
    status: Literal["draft", "running", "stopped", "decided"]
    name: str
    task_type: str
    variants: list[VariantOut]
    allocation: Literal["fixed", "bandit"]
    metric: Metric
    guardrails: GuardrailsOut
    min_samples: int
    max_duration_s: Real
    alpha: Real
    created_by: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    decision: dict[str, Any] | None = Field(
        description="winner, reason, decided_at and the figures behind it, once decided"
    )


class AuditEntryOut(ResponseBody):
    at: str
    actor: str
    action: str
    details: Any


class ExperimentWithAuditOut(ExperimentOut):
    audit: list[AuditEntryOut]


class ExperimentsOut(ResponseBody):
    experiments: list[ExperimentOut]


class AssignmentOut(ResponseBody):
    experiment_id: str
    variant: str
    model: str
    provider: str
    config: dict[str, Any]
    propensity: Real


class DecisionOut(ResponseBody):
    winner: str | None
    reason: str | None
    decided_at: str | None


class SrmOut(ResponseBody):
    p_value: Real | None
    ok: bool


class VariantResultsOut(ResponseBody):
    name: str
    n: int
    successes: int
    fallbacks: int = Field(
        description="Calls answered after a fallback, on a model other than the variant's "
        "(counted in n, intention-to-treat; 0 for calls forwarded by a version before the "
        "count)."
    )
    cost_usd: Real
    mean_cost_per_success: Real | None
    mean_quality: Real | None = Field(
        description="Mean quality of the calls that reported one (the min_quality_ratio "
        "guardrail's figure); null while none did."
    )
    quality_per_call: Real | None = Field(
        description="What metric quality compares: mean_quality times the share of calls "
        "that did not fail without a quality (each such failure at 0, intention-to-treat); "
        "0 when every call did, null while no call reported a quality."
    )
    unrated_failures: int = Field(
        description="Calls of n that failed without a quality (a call that gave up, among "
        "them); 0 for those counted by a version before the count."
    )
    p95_latency_ms: Real | None
    interval: list[Real] | None
    probability_best: Real
    guardrails_ok: bool
    guardrail_reasons: list[str] = Field(
        description="Why guardrails_ok is false: each guardrail the treatment breaks or is held "
        "back by (a success-rate drop or a quality ratio past its bound but not yet confirmed, "
        "a lower success rate under metric cost); empty for the control and when they hold."
    )


class ResultsOut(ResponseBody):
    status: Literal["draft", "running", "stopped", "decided"]
    metric: Metric
    decision: DecisionOut | None
    srm: SrmOut
    variants: list[VariantResultsOut]
    duplicates_dropped: int
