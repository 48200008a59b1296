"""The optimizer's read-only views: spend statistics, learning partitions, and what the
policy believes per task."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from finops.common.api_errors import NUL_IN_QUERY, responses
from finops.common.errors import BadRequest
from finops.optimizer.api.deps import Engine, StatsReader
from finops.optimizer.api.errors import READ
from finops.optimizer.api.schemas import (
    PartitionsOut,
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

# JSONResponse: see routes.router
router = APIRouter(default_response_class=JSONResponse)


def _either(names: tuple[str, ...]) -> str:
    """The values of a path parameter as OpenAPI text reads them: a, b or c."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


# The OpenAPI text names the dimensions from the one list of them, so it cannot miss one.
_KEYED_DIMENSIONS = get_args(KeyedDimension)
STATS_SUMMARY = f"Totals or tumbling windows per dimension: {_either(get_args(Dimension))}"
STATS_TOP_SUMMARY = f"Top keys of a dimension: {_either(_KEYED_DIMENSIONS)}"


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
