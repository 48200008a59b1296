"""Budgets: their spend, forecast and pacing, and the operator's changes to them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from finops.common.api_errors import ApiError, responses
from finops.common.errors import NotFound
from finops.common.request_body import Number, RequestBody
from finops.optimizer.api.deps import Commands, Engine, OptimizerWriter, StatsReader
from finops.optimizer.api.errors import CHECKPOINT_DOWN, READ, WRITE
from finops.optimizer.api.schemas import BudgetsOut, BudgetStatusOut
from finops.optimizer.domain.budgets import Budget

# JSONResponse: see routes.router
router = APIRouter(default_response_class=JSONResponse)


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
