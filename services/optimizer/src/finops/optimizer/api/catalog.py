"""The operator's catalog of arms and the objectives per task type, family or ``*``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from finops.common.api_errors import ApiError, responses
from finops.common.errors import NotFound
from finops.common.request_body import Count, Flag, Number, RequestBody
from finops.optimizer.api.deps import Commands, Engine, OptimizerWriter, StatsReader
from finops.optimizer.api.errors import CHECKPOINT_DOWN, READ, WRITE
from finops.optimizer.api.schemas import ArmOut, CatalogOut, ObjectiveOut
from finops.optimizer.domain.engine import ArmSpec
from finops.optimizer.domain.policy import Objective

# JSONResponse: see routes.router
router = APIRouter(default_response_class=JSONResponse)


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
