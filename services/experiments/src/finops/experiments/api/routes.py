"""HTTP layer of the experiments: definitions, life cycle, assignment and results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from finops.common.api_errors import BEARER, JSON_BODY, NUL_IN_QUERY, ApiError, responses
from finops.common.auth import Principal, require_scope
from finops.common.auth.scopes import EXPERIMENTS_ASSIGN, EXPERIMENTS_WRITE, STATS_READ
from finops.common.events.schemas import LlmConfig
from finops.common.request_body import Count, Label, NameText, Number, RequestBody
from finops.experiments.adapters.repository import Experiment, ExperimentRepository
from finops.experiments.api.schemas import (
    AssignmentOut,
    ExperimentOut,
    ExperimentsOut,
    ExperimentWithAuditOut,
    ResultsOut,
)
from finops.experiments.domain.allocation import (
    figures_rng,
    pick,
    thompson_propensities,
    unit_hash,
)
from finops.experiments.domain.decision import DEFAULT_MAX_SUCCESS_RATE_DROP
from finops.experiments.domain.definition import (
    DEFAULT_MAX_DURATION_S,
    Guardrails,
    NotRunning,
    build_definition,
)
from finops.experiments.domain.experiment_state import experiment_results
from finops.experiments.domain.stats import VariantStats

# json.dumps bytes with the response models: see finops.common.response_body
router = APIRouter(tags=["experiments"], default_response_class=JSONResponse)

NOT_FOUND = ApiError(404, "experiment_not_found", "no experiment has that id")
BAD_ID = ApiError(
    422,
    "validation_error",
    "the id holds a NUL character (`%00`) or a percent-encoding that is not UTF-8 text (`%ff`)",
)
POSTGRES_DOWN = ApiError(
    503, "dependency_unavailable", "PostgreSQL did not answer in time; see `Retry-After`"
)
#: the errors of every endpoint naming one experiment
ONE = (*BEARER, NOT_FOUND, BAD_ID, POSTGRES_DOWN)

CREATE_ERRORS = (
    *BEARER,
    *JSON_BODY,
    ApiError(409, "experiment_name_taken", "an experiment has that name"),
    ApiError(422, "unknown_task_type", "the task type has never been seen on agent.cost.v1"),
    ApiError(422, "too_few_variants", "fewer than two variants"),
    ApiError(422, "duplicate_variant_names", "two variants share a name"),
    ApiError(
        422,
        "weights_not_summing_to_one",
        "weights given for some variants only, not positive, or not summing to 1",
    ),
    ApiError(422, "alpha_out_of_range", "`alpha` outside (0, 0.5]"),
    ApiError(
        422,
        "validation_error",
        "any other problem of the body (no body, an unknown field, a wrong type, "
        "`min_samples` < 10, a name or variant name holding a control or format character or "
        "surrounding blanks: type `invalid_label`, a task type, model or provider holding "
        "one: type `control_character`, the message naming its code point, ...; `details` "
        "names each field)",
    ),
    POSTGRES_DOWN,
)
LIST_ERRORS = (
    *BEARER,
    ApiError(422, "validation_error", "`status` is not draft, running, stopped or decided"),
    POSTGRES_DOWN,
)
START_ERRORS = (
    *ONE,
    ApiError(409, "invalid_status_transition", "the experiment is not a draft"),
)
STOP_ERRORS = (
    *ONE,
    ApiError(409, "invalid_status_transition", "the experiment is stopped or decided"),
)
ASSIGN_ERRORS = (
    *ONE,
    ApiError(409, "experiment_not_running", "the experiment is a draft, stopped or decided"),
    ApiError(422, "validation_error", "`unit` is missing, empty or over 256 characters"),
    NUL_IN_QUERY,
)

Writer = Annotated[Principal, Depends(require_scope(EXPERIMENTS_WRITE))]
Assigner = Annotated[Principal, Depends(require_scope(EXPERIMENTS_ASSIGN))]
Reader = Annotated[Principal, Depends(require_scope(STATS_READ))]


async def _repository(request: Request) -> ExperimentRepository:
    return request.app.state.experiments  # type: ignore[no-any-return]


Repository = Annotated[ExperimentRepository, Depends(_repository)]


class VariantIn(RequestBody):
    name: Label = Field(min_length=1, max_length=64)
    model: NameText = Field(min_length=1, max_length=256)
    provider: NameText = Field(min_length=1, max_length=64)
    config: LlmConfig = Field(default_factory=LlmConfig)
    weight: Number | None = None


class GuardrailsIn(RequestBody):
    min_quality_ratio: Number = Field(0.95, gt=0, le=1)
    max_p95_latency_ms: Number | None = Field(None, gt=0)
    #: left out: on at the default; given as null: off (pydantic applies a default only to a
    #: field left out, so the two are told apart)
    max_success_rate_drop: Number | None = Field(
        DEFAULT_MAX_SUCCESS_RATE_DROP,
        ge=0,
        le=1,
        description=(
            "The largest drop of the treatment's success rate below the control's (absolute: "
            "0.05 = 5 points) that lets it win; a drop confirmed above it stops the experiment "
            "with no winner. Left out: 0.05. `null` turns the guardrail off."
        ),
    )


class ExperimentIn(RequestBody):
    name: Label = Field(min_length=1, max_length=128)
    task_type: NameText = Field(min_length=1, max_length=64)
    variants: list[VariantIn] = Field(max_length=16)
    allocation: Literal["fixed", "bandit"] = "fixed"
    metric: Literal["cost_per_success", "cost", "quality"] = "cost_per_success"
    guardrails: GuardrailsIn = Field(default_factory=GuardrailsIn)
    min_samples: Count = Field(100, ge=10, le=10_000_000)
    max_duration_s: Number = Field(DEFAULT_MAX_DURATION_S, gt=0, le=366 * 24 * 3600)
    alpha: Number = 0.05
    #: what fixed splits hash each unit with (default: a random one per experiment); two
    #: experiments given the same salt assign every unit alike, e.g. a seeded simulation run
    #: again, or the same buckets tested again
    salt: str | None = Field(None, min_length=1, max_length=128)


@router.post(
    "/api/experiments",
    status_code=201,
    summary="Define an experiment (status draft)",
    response_model=ExperimentOut,
    description=(
        "Scope `experiments:write`. The first variant is the control. Weights: all given "
        "(positive, summing to 1) or none (equal split). The task type must have been seen "
        "on agent.cost.v1. `salt` (optional) is what fixed splits hash each unit with: "
        "experiments given the same salt assign every unit alike (default: a random one). "
        "Guardrails left out: `min_quality_ratio` 0.95, `max_success_rate_drop` 0.05 (a "
        "treatment whose success rate is more than 5 points below the control's does not win), "
        "`max_p95_latency_ms` off; `max_success_rate_drop` or `max_p95_latency_ms` given as "
        "`null` is off (`min_quality_ratio` takes a number only)."
    ),
    responses=responses(CREATE_ERRORS),
)
async def create_experiment(
    body: ExperimentIn, principal: Writer, repo: Repository
) -> dict[str, Any]:
    known = {body.task_type} if await repo.task_type_known(body.task_type) else set()
    definition = build_definition(
        name=body.name,
        task_type=body.task_type,
        variants=[
            {**v.model_dump(exclude={"config"}), "config": v.config.model_dump(exclude_none=True)}
            for v in body.variants
        ],
        known_task_types=known,
        allocation=body.allocation,
        metric=body.metric,
        guardrails=Guardrails(**body.guardrails.model_dump()),
        min_samples=body.min_samples,
        max_duration_s=body.max_duration_s,
        alpha=body.alpha,
    )
    experiment = await repo.create(definition, principal.username, salt=body.salt)
    return experiment.to_api()


@router.get(
    "/api/experiments",
    summary="Every experiment",
    response_model=ExperimentsOut,
    responses=responses(LIST_ERRORS),
)
async def list_experiments(
    _: Reader,
    repo: Repository,
    status: Literal["draft", "running", "stopped", "decided"] | None = None,
) -> dict[str, Any]:
    return {"experiments": [e.to_api() for e in await repo.all(status)]}


@router.get(
    "/api/experiments/{experiment_id}",
    summary="One experiment with its audit trail",
    response_model=ExperimentWithAuditOut,
    responses=responses(ONE),
)
async def get_experiment(experiment_id: str, _: Reader, repo: Repository) -> dict[str, Any]:
    experiment = await repo.get(experiment_id)
    return {**experiment.to_api(), "audit": await repo.audit(experiment_id)}


@router.post(
    "/api/experiments/{experiment_id}/start",
    summary="Start a draft experiment",
    response_model=ExperimentOut,
    responses=responses(START_ERRORS),
)
async def start_experiment(
    experiment_id: str, principal: Writer, repo: Repository, request: Request
) -> dict[str, Any]:
    experiment = await repo.apply(experiment_id, "start", principal.username)
    _announce_soon(request)
    return experiment.to_api()


@router.post(
    "/api/experiments/{experiment_id}/stop",
    summary="Stop a draft or running experiment (no winner)",
    response_model=ExperimentOut,
    responses=responses(STOP_ERRORS),
)
async def stop_experiment(
    experiment_id: str, principal: Writer, repo: Repository, request: Request
) -> dict[str, Any]:
    experiment = await repo.apply(experiment_id, "stop", principal.username)
    request.app.state.intake.known[experiment.id] = experiment  # no assignment after a stop
    _announce_soon(request)
    return experiment.to_api()


def _announce_soon(request: Request) -> None:
    """The change is in its audit row, the outbox of its announcement: the intake publishes
    it after its current batch (a broker that is down delays it, and fails no request)."""
    request.app.state.intake.announce_soon()


@router.get(
    "/api/experiments/{experiment_id}/assignment",
    summary="The variant for a unit",
    response_model=AssignmentOut,
    description=(
        "Scope `experiments:assign`. Fixed splits hash the unit with the experiment's salt, so "
        "a unit always gets the same variant; bandits allocate by Thompson sampling over the "
        "current results, with the unit's hash as the draw. `propensity` is the probability "
        "of the variant given."
    ),
    responses=responses(ASSIGN_ERRORS),
)
async def assign(
    experiment_id: str,
    _: Assigner,
    repo: Repository,
    request: Request,
    unit: Annotated[str, Query(min_length=1, max_length=256)],
) -> dict[str, Any]:
    cached = request.app.state.intake.known.get(experiment_id)
    # Running as of the last refresh (<= refresh_interval_s old): no database round trip.
    experiment = cached if cached and cached.status == "running" else await repo.get(experiment_id)
    if experiment.status != "running":
        raise NotRunning(f"experiment {experiment_id} is {experiment.status}, not running")
    definition = experiment.definition
    weights = definition.weights
    if definition.allocation == "bandit":
        stats = await _current_stats(request, experiment)
        rng = figures_rng(experiment.id)  # the same state, the same allocation
        weights = thompson_propensities(stats, weights, definition.metric, rng)
    index = pick(weights, unit_hash(experiment.salt, unit))
    variant = definition.variants[index]
    return {
        "experiment_id": experiment.id,
        "variant": variant.name,
        "model": variant.model,
        "provider": variant.provider,
        "config": variant.config,
        "propensity": weights[index],
    }


async def _current_stats(request: Request, experiment: Experiment) -> list[VariantStats]:
    intake = getattr(request.app.state, "intake", None)
    state = await intake.published_state(experiment.id) if intake is not None else None
    return state.stats if state else [VariantStats() for _ in experiment.definition.variants]


@router.get(
    "/api/experiments/{experiment_id}/results",
    summary="Per-variant statistics, SRM check and the decision",
    response_model=ResultsOut,
    description=(
        "Scope `stats:read`. `interval` is the always-valid interval of the variant's primary "
        "metric (valid however often results are looked at); `probability_best` is the "
        "posterior probability (normal approximation) that the variant is best on it."
    ),
    responses=responses(ONE),
)
async def results(
    experiment_id: str, _: Reader, repo: Repository, request: Request
) -> dict[str, Any]:
    experiment = await repo.get(experiment_id)
    # Live on the instance that owns the experiment, its last checkpoint's snapshot elsewhere.
    state = await request.app.state.intake.published_state(experiment.id)
    body = experiment_results(experiment.id, experiment.definition, state)
    if body["decision"] is None and experiment.decision is not None:
        body["decision"] = {
            k: experiment.decision.get(k) for k in ("winner", "reason", "decided_at")
        }
    return {"status": experiment.status, **body}
