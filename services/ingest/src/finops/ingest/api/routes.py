"""HTTP layer of ingest: read the body, call the domain, publish, answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from finops.common.api_errors import (
    BEARER,
    INVALID_JSON,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    responses,
)
from finops.common.events import event_json_schemas
from finops.common.metrics import counter_by
from finops.ingest.api.deps import EventWriter, Publisher, Settings
from finops.ingest.api.schemas import Accepted, EventSchemas
from finops.ingest.domain.batches import BatchLimits, Caller, parse_batch
from finops.ingest.settings import IngestSettings

# json.dumps bytes with the response models: see finops.common.response_body
router = APIRouter(tags=["events"], default_response_class=JSONResponse)

EVENTS = Counter(
    "finops_ingest_events_total",
    "Events the broker acknowledged, by event type and cost_source (reported, computed,"
    " unpriced; n/a for errors)",
    ["type", "cost_source"],
)
REJECTED = counter_by(
    "finops_ingest_batches_rejected_total",
    "Batches refused whole while parsed and checked (nothing published), by the answer's"
    " error code",
    "code",
    (
        "invalid_json",
        "invalid_events",
        "batch_too_large",
        "agent_mismatch",
        "team_mismatch",
        "source_mismatch",
        "error",
    ),
)

PUBLISH_ERRORS = (
    INVALID_JSON,
    *BEARER,
    ApiError(
        403,
        "agent_mismatch",
        "an event for another agent than the caller, without `events:write:any` "
        "(details list the indexes)",
    ),
    ApiError(
        403,
        "team_mismatch",
        "an event whose `team` is not one of the teams an admin bound the caller's account "
        "to, without `events:write:any` (details list the indexes)",
    ),
    ApiError(
        403,
        "source_mismatch",
        "an event whose `source` is not the caller (with `events:write:any`: nor its "
        "agent_id); details list the indexes",
    ),
    ApiError(
        413, "payload_too_large", "the body is over `FINOPS_MAX_BODY_BYTES` (1 MiB by default)"
    ),
    ApiError(
        413,
        "batch_too_large",
        "the batch holds over `FINOPS_MAX_BATCH_EVENTS` events (1,000 by default; details: "
        "`{max_events, events}`)",
    ),
    UNSUPPORTED_MEDIA_TYPE,
    ApiError(
        422,
        "invalid_events",
        'the body is not a batch (a JSON array or `{"events": [...]}`), or events are '
        "invalid; details: `[{index, field, message, type}]` for every bad event and field "
        "(type `time_in_future` or `time_too_old` for an implausible `time`, `invalid_text` "
        "for a string or key holding a NUL character, `control_character` for a name (agent, "
        "team, project, task type, provider, model, an id, an experiment or variant, a config or "
        "feature key, the error's type or provider code) holding another control character, "
        "a line separator (U+2028, U+2029) or a format character (a bidi override, a "
        "zero-width space or joiner, a byte order mark: Unicode category Cf), the message "
        "naming its code point)",
    ),
    ApiError(
        503,
        "broker_unavailable",
        "the broker did not acknowledge in time; retry after `Retry-After` seconds with the"
        " same event ids: an event not acknowledged may still be written later, and the"
        " consumers count an id once",
    ),
)


def _inlined(schema: Any, definitions: dict[str, Any] | None = None) -> Any:
    """``schema`` with its ``#/$defs/...`` references replaced by what they name.

    An event's JSON Schema keeps its sub-schemas under ``$defs``; inside the OpenAPI
    document such a reference would resolve against the document's root, so the request
    body below carries them inlined (events are not recursive).
    """
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    definitions = {**(definitions or {}), **schema.get("$defs", {})}
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
    dropped = {"$defs", "$schema", "$id", "x-schema-version"}
    return {
        key: _inlined(value, definitions) for key, value in schema.items() if key not in dropped
    }


#: the batch limit the route declares; each app says its own (:func:`use_batch_limit`)
DEFAULT_MAX_BATCH_EVENTS: int = IngestSettings.model_fields["max_batch_events"].default


def batch_schema(max_events: int) -> dict[str, Any]:
    """The request body of ``POST /api/events`` in the OpenAPI document: a batch of at most
    ``max_events`` events (the app's setting, set by :func:`use_batch_limit`)."""
    events = {
        "type": "array",
        "maxItems": max_events,
        "items": {"oneOf": [_inlined(s) for s in event_json_schemas().values()]},
    }
    return {
        "oneOf": [
            events,
            {"type": "object", "properties": {"events": events}, "required": ["events"]},
        ]
    }


def use_batch_limit(app: FastAPI, max_events: int) -> None:
    """Say ``max_events`` (``FINOPS_MAX_BATCH_EVENTS``) in ``app``'s OpenAPI document, where a
    generated client reads it: the route, shared by every app, declares the default."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            post = generate()["paths"]["/api/events"]["post"]
            # a new body: the one generated may be the route's own declaration
            post["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": batch_schema(max_events)}},
            }
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


@router.post(
    "/api/events",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": batch_schema(DEFAULT_MAX_BATCH_EVENTS)}},
        }
    },
    summary="Publish a batch of agent events (all or nothing)",
    response_model=Accepted,
    description=(
        'Body: a JSON array of events, or `{"events": [...]}`; at most '
        "`FINOPS_MAX_BATCH_EVENTS` events (1,000 by default) and `FINOPS_MAX_BODY_BYTES` "
        "(1 MiB by default), counted before any event is validated. Every event is "
        "validated, its `time` included: at most 5 minutes ahead of the server's clock and "
        "at most 60 days old (settings); one invalid event refuses the whole batch (422 "
        "listing each bad index and field). 202 only after the broker acknowledged every "
        "event (acks=all). Scope `events:write`; events for another agent_id need "
        "`events:write:any`; an event's `source` must be the caller (or that agent_id); an "
        "account an admin bound to its teams may name only those as an event's `team`."
    ),
    responses=responses(PUBLISH_ERRORS),
)
async def publish_events(
    request: Request, principal: EventWriter, publisher: Publisher, settings: Settings
) -> JSONResponse:
    caller = Caller.of(principal)
    body = await request.body()
    try:
        records = parse_batch(body, caller, _limits(settings), datetime.now(UTC))
    except Exception as exc:
        REJECTED.labels(getattr(exc, "code", "error")).inc()
        raise
    await publisher.publish(records)
    for record in records:
        EVENTS.labels(record.event_type, record.cost_source or "n/a").inc()
    return JSONResponse({"accepted": len(records)}, status_code=202)


def _limits(settings: IngestSettings) -> BatchLimits:
    return BatchLimits(
        max_events=settings.max_batch_events,
        max_clock_skew_s=settings.max_event_clock_skew_s,
        max_event_age_s=settings.max_event_age_days * 86400.0,
    )


@router.get(
    "/api/schemas",
    summary="JSON Schema of every event type",
    tags=["schemas"],
    response_model=EventSchemas,
)
async def schemas() -> dict[str, Any]:
    return event_json_schemas()
