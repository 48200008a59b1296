"""``GET /api/healing/circuits``: every circuit breaker of the fleet, from any instance."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from finops.common.api_errors import BEARER, NUL_IN_QUERY, ApiError, responses
from finops.healer.api.deps import Circuits, HealingReader
from finops.healer.api.schemas import CircuitsOut

router = APIRouter(default_response_class=JSONResponse)  # json.dumps bytes: see response_body


ERRORS = (
    *BEARER,
    ApiError(
        422,
        "validation_error",
        "`state` is not closed, open or half_open, or `provider`/`model` is empty or too long",
    ),
    NUL_IN_QUERY,
)


@router.get(
    "/api/healing/circuits",
    tags=["healing"],
    summary="Every circuit breaker: provider, model, state, failure rate, window counts",
    description=(
        "Scope `healing:read`. One entry per provider/model the healer has counted calls of, "
        "as last published on the compacted topic `finops.circuits.v1` (any healer instance "
        "answers for every breaker). `failure_rate`, `calls` and `failures` are over the "
        "sliding window of `window_s` seconds; `opened_at` and `next_probe_at` are set while "
        "the breaker is open or half-open. Filter with `state`, `provider`, `model`."
    ),
    response_model=CircuitsOut,
    responses=responses(ERRORS),
)
async def list_circuits(
    _: HealingReader,
    circuits: Circuits,
    state: Annotated[Literal["closed", "open", "half_open"] | None, Query()] = None,
    provider: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    model: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    listed = [
        c.to_dict()
        for c in circuits.all()
        if (state is None or c.state.value == state)
        and (provider is None or c.provider == provider)
        and (model is None or c.model == model)
    ]
    return {"circuits": listed, "count": len(listed)}
