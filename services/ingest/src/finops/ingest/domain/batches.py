"""Turn a request body into Kafka records, all or nothing. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import from_json

from finops.common.auth.principal import NOT_A_BOUND_TEAM, Principal
from finops.common.auth.scopes import EVENTS_WRITE_ANY
from finops.common.events import Event, TimeBounds, stamp_pricing, validate_batch
from finops.common.topics import TOPIC_FOR_EVENT_TYPE
from finops.ingest.domain.errors import (
    AgentMismatch,
    BatchTooLarge,
    InvalidBatch,
    MalformedBody,
    SourceMismatch,
    TeamMismatch,
)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    event_type: str
    cost_source: str | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends the batch: the agent ids it may speak for, whether it may speak for all, the
    name each agent id is recorded under (:meth:`Principal.agent_name`: its user id is
    recorded as its username), and which teams its events may name
    (:meth:`Principal.may_claim_team`)."""

    subject: str
    agent_ids: frozenset[str]
    may_write_any: bool
    agent_name: Callable[[str], str]
    may_claim_team: Callable[[str | None], bool]

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        return cls(
            subject=principal.sub,
            agent_ids=principal.agent_ids,
            may_write_any=principal.has_scope(EVENTS_WRITE_ANY),
            agent_name=principal.agent_name,
            may_claim_team=principal.may_claim_team,
        )


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What one batch may hold: its event count and how far event times may stray from now."""

    max_events: int
    max_clock_skew_s: float
    max_event_age_s: float


def _events_payload(body: bytes) -> list[Any]:
    """The body's events: a JSON array, or the list under ``"events"``. Parsed once, so the
    batch can be counted before any event is validated."""
    try:
        payload = from_json(body)
    except ValueError as exc:
        raise MalformedBody.of(body) from exc
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return payload["events"]  # type: ignore[no-any-return]
    raise InvalidBatch(
        'expected a JSON array of events or {"events": [...]}',
        details=[{"index": None, "field": "", "message": "not a batch", "type": "list_type"}],
    )


def parse_batch(body: bytes, caller: Caller, limits: BatchLimits, now: datetime) -> list[Record]:
    """Count, validate, authorise, price and encode every event; raise on the first class of
    fault.

    An oversized batch is refused before any event is validated. Validation reports every bad
    index and field at once (event times are checked against ``now`` and ``limits``); nothing
    of a faulty batch is returned, so nothing of it can be published.
    """
    payload = _events_payload(body)
    if len(payload) > limits.max_events:
        raise BatchTooLarge(
            f"a batch holds at most {limits.max_events} events, got {len(payload)}",
            details={"max_events": limits.max_events, "events": len(payload)},
        )
    bounds = TimeBounds(now.timestamp(), limits.max_clock_skew_s, limits.max_event_age_s)
    result = validate_batch(payload, time_bounds=bounds, parsed_from=body)
    if not result.ok:
        raise InvalidBatch(details=result.errors)
    events: list[Event] = result.events or []
    if not caller.may_write_any:
        foreign = [i for i, e in enumerate(events) if e.agent_id not in caller.agent_ids]
        if foreign:
            raise AgentMismatch(
                details=[
                    {
                        "index": i,
                        "field": "data.agent_id",
                        "agent_id": events[i].agent_id,
                        "message": f"{events[i].agent_id!r} is not the caller's agent id",
                    }
                    for i in foreign[:50]
                ]
            )
    _check_teams(events, caller)
    _check_sources(events, caller)
    return [_record(e, caller) for e in events]


def _check_teams(events: list[Event], caller: Caller) -> None:
    """An event's ``team`` spends that team's budget: a caller bound to its teams names only
    those (or none)."""
    foreign = [i for i, e in enumerate(events) if not caller.may_claim_team(e.data.team)]
    if foreign:
        raise TeamMismatch(
            details=[
                {
                    "index": i,
                    "field": "data.team",
                    "team": events[i].data.team,
                    "message": f"{events[i].data.team!r} {NOT_A_BOUND_TEAM}",
                }
                for i in foreign[:50]
            ]
        )


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


def _record(event: Event, caller: Caller) -> Record:
    # The events were parsed from this request's body: stamping them in place is safe.
    event.data.principal = caller.subject
    # One name per agent downstream (key, stats, budgets): its user id becomes its username.
    event.data.agent_id = caller.agent_name(event.data.agent_id)
    event.source = caller.agent_name(event.source)
    stamp_pricing(event)
    key, value = event.to_kafka()
    return Record(
        TOPIC_FOR_EVENT_TYPE[event.type],
        key,
        value,
        event.type,
        getattr(event.data, "cost_source", None),
    )
