from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finops.common.auth import Principal, require_scope
from finops.common.auth.scopes import OPTIMIZER_WRITE, RECOMMENDATIONS_READ, STATS_READ
from finops.common.circuits import CircuitTable
from finops.optimizer.adapters.recommendation_log import RecommendationLog
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.service_layer.commands import OperatorCommands


async def _engine(request: Request) -> OptimizerEngine:
    # Always through the intake: restoring a checkpoint replaces the engine object.
    return request.app.state.intake.engine  # type: ignore[no-any-return]


async def _commands(request: Request) -> OperatorCommands:
    return OperatorCommands(request.app.state.changes)


async def _reclog(request: Request) -> RecommendationLog:
    return request.app.state.reclog  # type: ignore[no-any-return]


async def _circuits(request: Request) -> CircuitTable:
    return request.app.state.circuits  # type: ignore[no-any-return]


Engine = Annotated[OptimizerEngine, Depends(_engine)]
Commands = Annotated[OperatorCommands, Depends(_commands)]
RecLog = Annotated[RecommendationLog, Depends(_reclog)]
Circuits = Annotated[CircuitTable, Depends(_circuits)]
Recommender = Annotated[Principal, Depends(require_scope(RECOMMENDATIONS_READ))]
StatsReader = Annotated[Principal, Depends(require_scope(STATS_READ))]
OptimizerWriter = Annotated[Principal, Depends(require_scope(OPTIMIZER_WRITE))]
