"""Errors of the ingest domain, each with a stable code; only the API maps them to HTTP."""

from __future__ import annotations

from finops.common.errors import AgentMismatch as AnyAgentMismatch
from finops.common.errors import (
    Forbidden,
    InvalidJson,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
)
from finops.common.errors import TeamMismatch as AnyTeamMismatch


class InvalidBatch(ValidationFailed):
    code = "invalid_events"
    message = "the batch has invalid events; nothing was published"


class MalformedBody(InvalidJson):
    """The body is not JSON, or not UTF-8 text (400 ``invalid_json``); JSON that is not a
    batch is :class:`InvalidBatch`."""


class BatchTooLarge(PayloadTooLarge):
    code = "batch_too_large"


class AgentMismatch(AnyAgentMismatch):
    message = "events may only be sent for the caller's own agent_id"


class TeamMismatch(AnyTeamMismatch):
    message = "events may only name the teams the caller's account is bound to"


class SourceMismatch(Forbidden):
    code = "source_mismatch"
    message = "an event's source must be the caller (or, for events:write:any, its agent_id)"


class BrokerUnavailable(Unavailable):
    code, message = "broker_unavailable", "the event broker is unavailable"
