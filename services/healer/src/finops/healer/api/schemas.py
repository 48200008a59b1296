"""Response bodies of the healer API, so that OpenAPI documents every answer.

Each model describes a dict the domain builds, field by field and in the same order (see
:mod:`finops.common.response_body`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from finops.common.response_body import Real, ResponseBody


class RemedyOut(ResponseBody):
    action: Literal["retry", "wait", "fallback", "trim", "repair", "abort"]
    delay_ms: Real
    model: str | None
    provider: str | None
    max_input_tokens: Real | None
    params: dict[str, Any]


class AdviceOut(ResponseBody):
    advice_id: str
    kind: str
    retryable: bool
    remedy: RemedyOut
    reason: str
    breaker: str | None = Field(description="the state of the breaker of the model asked for")


class CircuitOut(ResponseBody):
    provider: str
    model: str
    state: Literal["closed", "open", "half_open"]
    failure_rate: Real
    calls: int
    failures: int
    window_s: Real
    opened_at: str | None
    next_probe_at: str | None
    reason: str
    updated_at: str


class CircuitsOut(ResponseBody):
    circuits: list[CircuitOut]
    count: int


class KindStatsOut(ResponseBody):
    occurrences: int
    advised: int
    healed: int
    healed_ratio: Real | None
    mean_time_to_heal_ms: Real | None
    extra_cost_usd: Real


class RemedyTrialsOut(ResponseBody):
    kind: str
    provider: str
    action: str
    healed: int
    failed: int


class HealingStatsOut(ResponseBody):
    kinds: dict[str, KindStatsOut]
    remedies: list[RemedyTrialsOut]
    records_read: int


class LabelOut(ResponseBody):
    id: int
    kind: str
    decided_by_rule: str | None


class LabelsOut(ResponseBody):
    labels: list[LabelOut]
    labels_learned: int
