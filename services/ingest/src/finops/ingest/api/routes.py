"""HTTP layer of ingest: read the body, call the domain, publish, answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from finops.common.events import event_json_schemas
from finops.ingest.api.deps import EventWriter, Publisher, Settings
from finops.ingest.domain.batches import WRITE_ANY_SCOPE, Caller, parse_batch

router = APIRouter(tags=["events"])

EVENTS = Counter(
    "finops_ingest_events_total", "Events accepted and acknowledged", ["type", "cost_source"]
)
REJECTED = Counter("finops_ingest_batches_rejected_total", "Batches refused", ["code"])

_ERROR = {
    "content": {"application/json": {"example": {"error": {"code": "...", "message": "..."}}}}
}


@router.post(
    "/api/events",
    status_code=202,
    summary="Publish a batch of agent events (all or nothing)",
    description=(
        'Body: a JSON array of events, or `{"events": [...]}`; at most 1,000 events and '
        "1 MiB. Every event is validated; one invalid event refuses the whole batch (422 "
        "listing each bad index and field). 202 only after the broker acknowledged every "
        "event (acks=all). Scope `events:write`; events for another agent_id need "
        "`events:write:any`; an event's `source` must be the caller (or that agent_id)."
    ),
    responses={
        400: {"description": "body is not valid JSON (`invalid_json`)", **_ERROR},
        401: {"description": "missing, invalid, expired or revoked token", **_ERROR},
        403: {
            "description": "`insufficient_scope`, `agent_mismatch` or `source_mismatch`",
            **_ERROR,
        },
        413: {"description": "`payload_too_large` or `batch_too_large`", **_ERROR},
        422: {"description": "`invalid_events`: details list index, field, message", **_ERROR},
        503: {"description": "`broker_unavailable`; retry after Retry-After seconds", **_ERROR},
    },
)
async def publish_events(
    request: Request, principal: EventWriter, publisher: Publisher, settings: Settings
) -> JSONResponse:
    caller = Caller(
        subject=principal.sub,
        agent_ids=frozenset({principal.sub, principal.username}),
        may_write_any=principal.has_scope(WRITE_ANY_SCOPE),
    )
    body = await request.body()
    try:
        records = parse_batch(body, caller, settings.max_batch_events)
    except Exception as exc:
        REJECTED.labels(getattr(exc, "code", "error")).inc()
        raise
    await publisher.publish(records)
    for record in records:
        EVENTS.labels(record.event_type, record.cost_source or "n/a").inc()
    return JSONResponse({"accepted": len(records)}, status_code=202)


@router.get("/api/schemas", summary="JSON Schema of every event type", tags=["schemas"])
async def schemas() -> dict[str, Any]:
    return event_json_schemas()
