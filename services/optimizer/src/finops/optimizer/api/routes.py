"""HTTP layer of the optimizer: recommendations here, and the one router that includes the
others (:mod:`.stats`, :mod:`.catalog` with the objectives, :mod:`.budgets`)."""

from __future__ import annotations

import math
import random
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from finops.common.api_errors import (
    AGENT_MISMATCH,
    BEARER,
    FREE_QUERY,
    NUL_IN_QUERY,
    TEAM_MISMATCH,
    ApiError,
    responses,
)
from finops.common.errors import ValidationFailed
from finops.common.events.schemas.fields import MAX_FEATURE_NAME
from finops.common.metrics import counter_by
from finops.optimizer.api import budgets, catalog, stats
from finops.optimizer.api.deps import Circuits, Engine, RecLog, Recommender
from finops.optimizer.api.schemas import RecommendationOut
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
RESERVED_QUERY = {"task_type", "agent_id", "team", "seed"}
#: ``feature.<name>=<number>`` is the feature ``<name>``, whatever the name (even a reserved one)
FEATURE_PREFIX = "feature."
#: features a recommendation request may name
MAX_FEATURES = 32


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
        "`events:write:any`, as for events at ingest; `team` (optional, paced by its budget) "
        "must be one of the teams an admin bound the caller's account to, if it is bound."
    ),
    responses=responses(
        BEARER,
        AGENT_MISMATCH,
        TEAM_MISMATCH,
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
    team = team or None
    # the team's budget caps the answer: a bound account asks only for its own teams
    principal.require_may_claim_team(team)
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


# after the recommendations, in the order the OpenAPI document lists them
router.include_router(stats.router)
router.include_router(catalog.router)
router.include_router(budgets.router)
