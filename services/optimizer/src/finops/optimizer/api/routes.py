"""HTTP layer of the optimizer: recommendations, spend statistics, operator settings."""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from finops.common.api_errors import (
    AGENT_MISMATCH,
    BEARER,
    FREE_QUERY,
    JSON_BODY,
    NUL_IN_QUERY,
    ApiError,
    responses,
)
from finops.common.errors import BadRequest, NotFound, ValidationFailed
from finops.common.events.schemas.fields import MAX_FEATURE_NAME
from finops.common.metrics import counter_by
from finops.common.request_body import Count, Flag, Number, RequestBody
from finops.optimizer.api.deps import (
    Circuits,
    Commands,
    Engine,
    OptimizerWriter,
    RecLog,
    Recommender,
    StatsReader,
)
from finops.optimizer.api.schemas import (
    ArmOut,
    BudgetsOut,
    BudgetStatusOut,
    CatalogOut,
    ObjectiveOut,
    PartitionsOut,
    RecommendationOut,
    SummaryOut,
    TasksOut,
    TopOut,
    TotalsOut,
    WindowsOut,
)
from finops.optimizer.domain.analytics import (
    FLEET,
    FLEET_KEY,
    GRANULARITIES,
    Dimension,
    KeyedDimension,
    Metric,
)
from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec
from finops.optimizer.domain.policy import Objective
from finops.optimizer.domain.policy.mechanism import Mechanism

# An explicit JSONResponse: the response models validate the answer, and the bytes stay those
# of ``json.dumps`` (FastAPI's default with a response model is pydantic's own encoder, which
# writes some floats differently, e.g. 1e-05 as 0.00001).
router = APIRouter(default_response_class=JSONResponse)


_rng = random.SystemRandom()
#: every answer by what made the pick: "greedy", or the exploration's mechanism (seven values)
ANSWERED = counter_by(
    "finops_optimizer_recommendations_total",
    "Recommendations answered, by made_by: what made the pick (greedy or an exploration mechanism)",
    "made_by",
    ["greedy", *(mechanism.value for mechanism in Mechanism)],
)

INVALID = ApiError(
    422, "validation_error", "a parameter or the body is invalid (details: each field)"
)
CHECKPOINT_DOWN = ApiError(
    503,
    "dependency_unavailable",
    "PostgreSQL did not take the change (its record or its checkpoint) in time; see `Retry-After`",
)
READ = (*BEARER, INVALID)
WRITE = (
    *READ,
    *JSON_BODY,
    CHECKPOINT_DOWN,
)
RESERVED_QUERY = {"task_type", "agent_id", "team", "seed"}
#: ``feature.<name>=<number>`` is the feature ``<name>``, whatever the name (even a reserved one)
FEATURE_PREFIX = "feature."
#: features a recommendation request may name
MAX_FEATURES = 32


def _either(names: tuple[str, ...]) -> str:
    """The values of a path parameter as OpenAPI text reads them: a, b or c."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


# The OpenAPI text names the dimensions from the one list of them, so it cannot miss one.
_KEYED_DIMENSIONS = get_args(KeyedDimension)
STATS_SUMMARY = f"Totals or tumbling windows per dimension: {_either(get_args(Dimension))}"
STATS_TOP_SUMMARY = f"Top keys of a dimension: {_either(_KEYED_DIMENSIONS)}"


@router.get(
    "/api/recommendations",
    tags=["recommendations"],
    openapi_extra={FREE_QUERY: True},  # every other parameter is a feature
    summary="The model and configuration to use for a task",
    response_model=RecommendationOut,
    description=(
        "Scope `recommendations:read`. Any other numeric query parameter is a request feature "
        "for contextual routing (e.g. `input_tokens=1200`); `feature.<name>=<number>` is the "
        "feature `<name>` whatever its name, so also one named `task_type`, `agent_id`, `team` "
        "or `seed` (the SDK sends every feature so). A feature given twice is refused. With "
        "`seed`, the random draw comes from the policy's seed, the task type and this seed: "
        "the same request against the same learned state gets the same answer (reproducible "
        "runs); without it, the draw is unpredictable. The answer is logged with its "
        "propensity to `finops.recommendations.v1`; send `decision.recommendation_id` and "
        "`decision.propensity` back on the cost event of the call you make with it. "
        "Arms whose circuit breaker (the healer's, `finops.circuits.v1`) is open are left out, "
        "half-open ones but for a few probing requests; `skipped` lists them. `agent_id` "
        "(optional, logged with the answer) must be the caller's, unless the token has "
        "`events:write:any`, as for events at ingest."
    ),
    responses=responses(
        BEARER,
        AGENT_MISMATCH,
        ApiError(404, "no_arms", "no model is known yet (no event and no catalog arm)"),
        ApiError(
            422,
            "validation_error",
            "`task_type` missing or too long, `seed` out of range, a parameter or feature "
            "given twice, a feature that is not a number or whose name is empty or over 64 "
            "characters, over 32 features",
        ),
        NUL_IN_QUERY,
    ),
)
async def recommend(
    request: Request,
    principal: Recommender,
    engine: Engine,
    reclog: RecLog,
    circuits: Circuits,
    task_type: Annotated[str, Query(min_length=1, max_length=128)],
    agent_id: Annotated[str | None, Query(max_length=128)] = None,
    team: Annotated[str | None, Query(max_length=128)] = None,
    seed: Annotated[int | None, Query(ge=0, lt=2**63)] = None,
) -> dict[str, Any]:
    agent_id = agent_id or None  # empty: not given, as the healer takes it
    if agent_id is not None:  # the answer is logged in its name (finops.recommendations.v1)
        principal.require_speaks_for(agent_id)
        # its user id: paced by, and logged under, its username (as its events at ingest)
        agent_id = principal.agent_name(agent_id)
    features = _query_features(request)
    rng = _rng if seed is None else engine.request_rng(task_type, seed)
    # NoArms (no model known for the task type yet) answers 404 ``no_arms``
    rec = engine.recommend(
        task_type,
        features or None,
        agent_id=agent_id,
        team=team,
        rng=rng,
        breakers=circuits,
        probe_rate=request.app.state.settings.breaker_probe_rate,
    ).to_dict()
    ANSWERED.labels(rec["exploration"] or "greedy").inc()
    reclog.record({**rec, "agent_id": agent_id, "features": features})
    return rec


def _query_features(request: Request) -> dict[str, float]:
    """The recommendation's features: every query parameter but the reserved ones, a
    ``feature.`` prefix taken off. A feature given twice, a value that is no finite number or
    more than :data:`MAX_FEATURES` features raise :class:`ValidationFailed` (a reserved
    parameter given twice: :func:`~finops.common.request_checks.require_known_query`).
    """
    # a reserved parameter given twice was refused before the route ran (require_known_query)
    features: dict[str, float] = {}
    for key, value in request.query_params.multi_items():
        if key in RESERVED_QUERY:
            continue
        name = key.removeprefix(FEATURE_PREFIX)
        if not 1 <= len(name) <= MAX_FEATURE_NAME:  # as in an event's features
            message = f"a feature's name has 1 to {MAX_FEATURE_NAME} characters, not {len(name)}"
            raise _query_error(f"query.{key}", message, "feature_name_length")
        if name in features:
            message = f"feature {name!r} given more than once"
            raise _query_error(f"query.{key}", message, "duplicate_feature")
        try:
            features[name] = float(value)
        except ValueError:
            features[name] = math.nan
        if not math.isfinite(features[name]):
            raise _query_error(
                f"query.{key}",
                f"not a finite number: {value!r}",
                "finite_number",
                summary=f"feature {name!r} must be a finite number",
            )
    if len(features) > MAX_FEATURES:
        message = f"{len(features)} features; at most {MAX_FEATURES}"
        raise _query_error(
            "query", message, "too_many_features", summary=f"at most {MAX_FEATURES} features"
        )
    return features


def _query_error(
    field: str, message: str, kind: str, *, summary: str | None = None
) -> ValidationFailed:
    """422 ``validation_error`` for one query parameter (``summary``: the error's message,
    by default the detail's)."""
    details = [{"field": field, "message": message, "type": kind}]
    return ValidationFailed(summary or message, details=details)


@router.get(
    "/api/stats/summary",
    tags=["stats"],
    summary="Fleet totals and top spenders",
    response_model=SummaryOut,
    responses=responses(READ),
)
async def stats_summary(_: StatsReader, engine: Engine) -> dict[str, Any]:
    return engine.analytics.summary()


@router.get(
    "/api/partitions",
    tags=["stats"],
    summary="Which learning partitions this worker owns, and which its view holds",
    response_model=PartitionsOut,
    description="With partitioned learning (`FINOPS_PARTITIONED_LEARNING=true`), the "
    "partitions of `finops.optimizer-events.v1` this worker owns and learns, those whose state "
    "it has read from `finops.optimizer-shards.v1`, and those its current view answers from. "
    "With one worker (the default): one partition, owned.",
    responses=responses(READ),
)
async def partitions(_: StatsReader, request: Request) -> dict[str, Any]:
    learning = getattr(request.app.state, "learning", None)
    if learning is None:
        return {
            "partitioned": False,
            "partitions": 1,
            "owned": [0],
            "published": [0],
            "viewed": [0],
            "events_applied": request.app.state.intake.events,
        }
    return {"partitioned": True, **learning.ownership()}


@router.get(
    "/api/stats/{dimension}",
    tags=["stats"],
    summary=STATS_SUMMARY,
    response_model=TotalsOut | WindowsOut,
    description="Calls, tokens, spend, success rate, cost per success, latency p50/p95, per "
    f"key of the dimension ({_either(_KEYED_DIMENSIONS)}), or in one row of key "
    f"`{FLEET_KEY}` for `{FLEET}`, every call. "
    "Without `window`: all-time totals; with `window`: the most recent windows by event time.",
    responses=responses(READ, NUL_IN_QUERY),
)
async def stats(
    _: StatsReader,
    engine: Engine,
    dimension: Annotated[Dimension, Path()],
    window: Annotated[Literal["minute", "hour", "day"] | None, Query()] = None,
    key: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 60,
    by: Annotated[Metric, Query()] = "spend_usd",
) -> dict[str, Any]:
    dim = dimension
    if window is None:
        return {"dimension": dim, "totals": engine.analytics.totals(dim, key=key, by=by)}
    if window not in GRANULARITIES:
        raise BadRequest(f"window must be one of {GRANULARITIES}")
    return {
        "dimension": dim,
        "window": window,
        "windows": engine.analytics.window(dim, window, limit=limit, key=key, by=by),
    }


@router.get(
    "/api/stats/{dimension}/top",
    tags=["stats"],
    summary=STATS_TOP_SUMMARY,
    response_model=TopOut,
    responses=responses(READ),
)
async def stats_top(
    _: StatsReader,
    engine: Engine,
    dimension: Annotated[KeyedDimension, Path()],
    by: Annotated[Metric, Query()] = "spend_usd",
    n: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    return {"dimension": dimension, "by": by, "top": engine.analytics.top(dimension, by=by, n=n)}


@router.get(
    "/api/tasks",
    tags=["recommendations"],
    summary="What the policy believes per task",
    response_model=TasksOut,
    responses=responses(READ),
)
async def tasks(_: StatsReader, engine: Engine) -> dict[str, Any]:
    return {"policy": engine.policy_status(), "tasks": engine.tasks()}


class ArmIn(RequestBody):
    model: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    config: dict[str, str | Count | Number | Flag] = Field(default_factory=dict, max_length=32)


@router.get(
    "/api/catalog",
    tags=["catalog"],
    summary="Operator-managed arms",
    response_model=CatalogOut,
    responses=responses(READ),
)
async def catalog(_: StatsReader, engine: Engine) -> dict[str, Any]:
    return {
        "arms": [spec.to_dict() for spec in engine.catalog.values()],
        "seen": [spec.to_dict() for spec in engine.arms.values()],
        "withdrawn": sorted(engine.withdrawn),
    }


@router.post(
    "/api/catalog",
    tags=["catalog"],
    status_code=201,
    summary="Offer an arm (model, provider, config) to every task",
    response_model=ArmOut,
    responses=responses(WRITE),
)
async def add_arm(arm: ArmIn, _: OptimizerWriter, commands: Commands) -> dict[str, Any]:
    spec = await commands.offer_arm(ArmSpec(arm.model, arm.provider, dict(arm.config)))
    return spec.to_dict()


@router.delete(
    "/api/catalog/{arm}",
    tags=["catalog"],
    status_code=204,
    summary="Withdraw an arm: never recommended again until it is offered again",
    responses=responses(READ, CHECKPOINT_DOWN, ApiError(404, "not_found", "not in the catalog")),
)
async def remove_arm(arm: str, _: OptimizerWriter, commands: Commands) -> None:
    if not await commands.withdraw_arm(arm):
        raise NotFound(
            f"no catalog arm {arm!r} (GET /api/catalog lists them): an arm seen only in events "
            "is not in the catalog; offer it first (POST /api/catalog with its model, provider "
            "and config), then withdraw it"
        )


class ObjectiveIn(RequestBody):
    quality_floor: Number | None = Field(None, ge=0, le=1)
    relative_quality_floor: Number | None = Field(None, gt=0, le=1)
    latency_p95_ms: Number | None = Field(None, gt=0)
    wtp_per_usd: Number | None = Field(None, ge=0)
    latency_weight_per_s: Number = Field(0.0, ge=0)


@router.get(
    "/api/objectives",
    tags=["objectives"],
    response_model=dict[str, ObjectiveOut],
    responses=responses(READ),
)
async def objectives(_: StatsReader, engine: Engine) -> dict[str, Any]:
    return engine.objectives()


@router.put(
    "/api/objectives/{scope}",
    tags=["objectives"],
    summary="Set the objective of a task type, a task family or `*`",
    response_model=dict[str, ObjectiveOut],
    responses=responses(WRITE),
)
async def set_objective(
    scope: Annotated[str, Path(min_length=1, max_length=128)],
    body: ObjectiveIn,
    _: OptimizerWriter,
    commands: Commands,
) -> dict[str, Any]:
    return {scope: await commands.set_objective(scope, Objective(**body.model_dump()))}


#: the smallest budget limit, a micro-dollar
MIN_LIMIT_USD = 0.000001
AlertThreshold = Annotated[Number, Field(gt=0, le=10, description="fraction of the limit")]


class BudgetIn(RequestBody):
    scope: Literal["team", "agent"]
    subject: str = Field(min_length=1, max_length=128)
    period: Literal["day", "month"]
    # at least a micro-dollar: the spend of a call (up to $1,000,000) over a limit of 5e-324
    # was an infinite used fraction, and every GET /api/budgets a 500 (not JSON)
    limit_usd: Number = Field(ge=MIN_LIMIT_USD)
    alert_thresholds: tuple[AlertThreshold, ...] = Field(
        (0.8, 1.0), max_length=8, json_schema_extra={"minItems": 1}
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _some_threshold(cls, thresholds: tuple[float, ...]) -> tuple[float, ...]:
        # checked once the thresholds are valid: as Field(min_length=1), one threshold out of
        # range was also "Tuple should have at least 1 item after validation, not 0"
        if not thresholds:
            raise ValueError("give at least one threshold")
        return thresholds


@router.get(
    "/api/budgets",
    tags=["budgets"],
    summary="Budgets with spend, forecast, pacing",
    response_model=BudgetsOut,
    responses=responses(READ),
)
async def budgets(_: StatsReader, engine: Engine) -> dict[str, Any]:
    return {"budgets": engine.budgets.statuses()}


@router.put(
    "/api/budgets/{budget_id}",
    tags=["budgets"],
    summary="Create or replace a budget",
    response_model=BudgetStatusOut,
    responses=responses(WRITE),
)
async def put_budget(
    budget_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: BudgetIn,
    _: OptimizerWriter,
    commands: Commands,
) -> dict[str, Any]:
    return await commands.put_budget(Budget(budget_id, **body.model_dump()))


@router.delete(
    "/api/budgets/{budget_id}",
    tags=["budgets"],
    status_code=204,
    responses=responses(
        READ, CHECKPOINT_DOWN, ApiError(404, "not_found", "no budget with that id")
    ),
)
async def delete_budget(budget_id: str, _: OptimizerWriter, commands: Commands) -> None:
    if not await commands.delete_budget(budget_id):
        raise NotFound(f"no budget {budget_id!r}")
