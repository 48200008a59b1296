"""Turn a request body into Kafka records, all or nothing. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from finops.common.events import Event, stamp_pricing, validate_batch
from finops.common.topics import TOPIC_FOR_EVENT_TYPE
from finops.ingest.domain.errors import (
    AgentMismatch,
    BatchTooLarge,
    InvalidBatch,
    MalformedBody,
    SourceMismatch,
)

WRITE_ANY_SCOPE = "events:write:any"


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    event_type: str
    cost_source: str | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends the batch: the agent ids it may speak for, and whether it may speak for all."""

    subject: str
    agent_ids: frozenset[str]
    may_write_any: bool


def _events_payload(body: bytes) -> Any:
    """The body's events: the raw JSON array (fast path) or the list under ``"events"``."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        return stripped
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedBody(
            "request body is not valid JSON",
            details=[{"index": None, "field": "", "message": str(exc), "type": "json_invalid"}],
        ) from exc
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return payload["events"]
    raise InvalidBatch(
        'expected a JSON array of events or {"events": [...]}',
        details=[{"index": None, "field": "", "message": "not a batch", "type": "list_type"}],
    )


def parse_batch(body: bytes, caller: Caller, max_events: int) -> list[Record]:
    """Validate, authorise, price and encode every event; raise on the first class of fault.

    Validation reports every bad index and field at once; nothing of a faulty batch is
    returned, so nothing of it can be published.
    """
    result = validate_batch(_events_payload(body))
    if not result.ok:
        if any(e["type"] == "json_invalid" for e in result.errors):
            raise MalformedBody("request body is not valid JSON", details=result.errors)
        raise InvalidBatch(details=result.errors)
    events: list[Event] = result.events or []
    if len(events) > max_events:
        raise BatchTooLarge(f"a batch holds at most {max_events} events, got {len(events)}")
    if not caller.may_write_any:
        foreign = [i for i, e in enumerate(events) if e.agent_id not in caller.agent_ids]
        if foreign:
            raise AgentMismatch(
                details=[
                    {"index": i, "field": "data.agent_id", "agent_id": events[i].agent_id}
                    for i in foreign[:50]
                ]
            )
    _check_sources(events, caller)
    return [_record(e, caller.subject) for e in events]


def _check_sources(events: list[Event], caller: Caller) -> None:
    """``source`` says who emitted the event: the caller itself, or, for a caller that writes
    for any agent, the agent it writes for. Anything else would put words in another's mouth."""
    spoofed = [
        i
        for i, e in enumerate(events)
        if e.source not in caller.agent_ids
        and not (caller.may_write_any and e.source == e.agent_id)
    ]
    if spoofed:
        raise SourceMismatch(
            details=[
                {"index": i, "field": "source", "source": events[i].source} for i in spoofed[:50]
            ]
        )


def _record(event: Event, subject: str) -> Record:
    # The events were parsed from this request's body: stamping them in place is safe.
    event.data.principal = subject
    stamp_pricing(event)
    key, value = event.to_kafka()
    return Record(
        TOPIC_FOR_EVENT_TYPE[event.type],
        key,
        value,
        event.type,
        getattr(event.data, "cost_source", None),
    )
