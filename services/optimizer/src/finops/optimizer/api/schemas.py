"""Response bodies of the optimizer API, so that OpenAPI documents every answer.

Each model describes a dict the engine builds, field by field and in the same order (see
:mod:`finops.common.response_body`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from finops.common.response_body import Real
from finops.common.response_body import ResponseBody as Out
from finops.optimizer.domain.policy import Mechanism


class ArmOut(Out):
    arm: str
    model: str
    provider: str
    config: dict[str, Any]


class SkippedArmOut(Out):
    arm: str
    model: str
    provider: str
    breaker: str


class ExpectedOut(Out):
    quality: Real | None
    cost_usd: Real | None
    latency_ms: Real | None


class AlternativeOut(Out):
    arm: str
    probability: Real
    expected_quality: Real
    quality_sd: Real
    expected_cost_usd: Real
    p95_latency_ms: Real | None
    feasible: bool
    score: Real


#: an explored answer's mechanism (a :class:`Mechanism` value), documented for API readers:
#: typed as text so that the enum's docstring does not become an OpenAPI component
Exploration = Annotated[
    str | None,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "enum": [m.value for m in Mechanism]}, {"type": "null"}],
            "description": "what gave an explored arm its probability (see docs/optimizer.md); "
            "null for a greedy pick",
        }
    ),
]


class RecommendationOut(Out):
    recommendation_id: str
    task_type: str
    model: str
    provider: str
    config: dict[str, Any]
    arm: str
    expected: ExpectedOut
    propensity: Real
    policy_version: str
    alternatives: list[AlternativeOut]
    reason: str
    explored: bool
    exploration: Exploration
    time: str
    skipped: list[SkippedArmOut]


class UsageRow(Out):
    """Calls, tokens, spend, success and latency of one key (or window row)."""

    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    spend_usd: Real
    successes: int
    success_rate: Real | None
    cost_per_success: Real | None = Field(
        description="spend_usd over priced_successes (None without one)"
    )
    priced_successes: int = Field(
        description="successes of the calls that have a cost (an unpriced call's is unknown)"
    )
    latency_p50_ms: Real | None
    latency_p95_ms: Real | None
    unpriced_calls: int
    unpriced_outcome_unknown: int = Field(
        description="unpriced calls restored from a checkpoint written before the successes "
        "among unpriced calls were kept: their successes, if any, are among priced_successes"
    )
    quality_mean: Real | None


class DedupeOut(Out):
    remembered: int
    capacity: int
    horizon: int


class SummaryOut(Out):
    events: int
    duplicates: int = Field(
        description="calls not counted: their event id was counted already, in a record of "
        "its own (an agent sent the event again)"
    )
    redelivered: int = Field(
        description="calls not counted: a record taken already, read again (the same event "
        "id at the same position of the input topic: partitioned learning forwards again what "
        "a forwarder had not committed when it stopped or was rebalanced); an event sent again "
        "is among duplicates, also in a log replaced since (a new broker, a topic recreated)"
    )
    fleet: UsageRow
    keys: dict[str, int]
    windows: dict[str, int]
    late_for_windows: dict[str, int]
    out_of_range_for_windows: int
    watermark: str | None
    dedupe: DedupeOut


class TotalsOut(Out):
    dimension: str
    totals: list[UsageRow]


class WindowOut(Out):
    granularity: str
    start: str
    end: str
    start_ts: Real
    rows: list[UsageRow]


class WindowsOut(Out):
    dimension: str
    window: Literal["minute", "hour", "day"]
    windows: list[WindowOut]


class TopOut(Out):
    dimension: str
    by: str
    top: list[UsageRow]


class ArmBeliefOut(Out):
    quality: Real
    quality_sd: Real
    cost_usd: Real
    p95_latency_ms: Real | None
    observations: Real
    drifts: int


class TaskOut(Out):
    family: str
    arms: dict[str, ArmBeliefOut]


class PartitionsOut(Out):
    partitioned: bool = Field(description="whether learning is partitioned by task type")
    partitions: int = Field(description="partitions of the learning topic")
    owned: list[int] = Field(description="partitions this worker learns")
    published: list[int] = Field(description="partitions whose state this worker has read")
    viewed: list[int] = Field(description="partitions its current view answers from")
    events_applied: int = Field(
        description="records of events the learning took in, duplicates included: one worker, "
        "since it first started (the count is kept in its checkpoint, so a restart goes on "
        "from the checkpoint's count, and records replayed since it are counted again; an "
        "unreadable checkpoint starts it at 0); partitioned, since this worker started"
    )


class TasksOut(Out):
    policy: dict[str, Any] = Field(
        description="fleet-level planning status: updates, shadow price `mu`, quality ratios"
    )
    tasks: dict[str, TaskOut]


class CatalogOut(Out):
    arms: list[ArmOut]
    seen: list[ArmOut]
    withdrawn: list[str]


class ObjectiveOut(Out):
    quality_floor: Real | None
    relative_quality_floor: Real | None
    latency_p95_ms: Real | None
    wtp_per_usd: Real | None
    latency_weight_per_s: Real


class BudgetOut(Out):
    id: str
    scope: Literal["team", "agent"]
    subject: str
    period: Literal["day", "month"]
    limit_usd: Real
    alert_thresholds: list[Real]


class PacingOut(Out):
    budget_id: str
    scope: Literal["team", "agent"]
    subject: str
    action: Literal["none", "step_down", "exhausted"]
    max_cost_per_call_usd: Real | None = Field(
        description="remaining budget / expected remaining calls; null until the budget has "
        "counted a call (no call rate to divide by)"
    )
    current_cost_per_call_usd: Real | None
    cost_ratio: Real | None
    remaining_usd: Real
    expected_remaining_calls: Real | None = Field(
        description="calls expected in the rest of the period at the current call rate; null "
        "until the budget has counted a call"
    )
    spend_usd: Real
    forecast_usd: Real
    limit_usd: Real
    period_end: str | None = Field(description="null until the optimizer has seen a call")
    reason: str


class BudgetStatusOut(Out):
    budget: BudgetOut
    period_start: str | None = Field(
        description="the current period's bounds: null until the optimizer has seen a call "
        "(time is the events' time: no period is current before one)"
    )
    period_end: str | None = Field(description="null until the optimizer has seen a call")
    as_of: str | None = Field(
        description="the newest event time seen, that the status is as of: null until the "
        "optimizer has seen a call"
    )
    spend_usd: Real
    calls: int
    used_fraction: Real
    burn_rate_usd_per_hour: Real
    calls_per_hour: Real
    forecast_usd: Real
    alerts_fired: list[str]
    late_events: int
    pacing: PacingOut


class BudgetsOut(Out):
    budgets: list[BudgetStatusOut]
