"""``GET /api/healing/stats``: per kind, how often it happens and how well advice heals it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finops.common.api_errors import BEARER, responses
from finops.healer.api.deps import Outcomes, StatsReader
from finops.healer.api.schemas import HealingStatsOut

router = APIRouter(default_response_class=JSONResponse)  # json.dumps bytes: see response_body


@router.get(
    "/api/healing/stats",
    tags=["healing"],
    summary="Per error kind: occurrences, healed ratio, mean time to heal, extra cost",
    description=(
        "Scope `stats:read`. For each kind: `occurrences` (errors classified as it), `advised` "
        "(failing calls that asked for advice, a chain of advices counted once), `healed` "
        "(of those, the ones that ended in a successful call), `healed_ratio`, "
        "`mean_time_to_heal_ms` (first advice to success) and `extra_cost_usd` (what the "
        "healing calls cost over the same usage on the model first asked for). `remedies` "
        "lists the learned outcomes per (kind, provider, action); `records_read` counts the "
        "records this instance has applied since it started (advice, calls and errors)."
    ),
    response_model=HealingStatsOut,
    responses=responses(BEARER),
)
async def stats(_: StatsReader, outcomes: Outcomes) -> dict[str, Any]:
    ledger = outcomes.ledger
    return {
        "kinds": ledger.report(),
        "remedies": ledger.learner.to_state(),
        "records_read": outcomes.records,
    }
