"""The envelope is built in one place; both event types share one identity model."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from support import llm_call

from finops.common.events import (
    ErrorData,
    LlmCallData,
    envelope,
    error_event,
    parse_event,
)
from finops.common.events.schemas import CallIdentity

IDENTITY = ["agent_id", "team", "project", "task_type", "provider", "model"]


def test_cost_and_error_data_share_the_identity_fields_in_order() -> None:
    assert list(CallIdentity.model_fields) == IDENTITY
    for data in (LlmCallData, ErrorData):
        assert issubclass(data, CallIdentity)
        assert list(data.model_fields)[:6] == IDENTITY


def test_a_cost_event_on_kafka_starts_its_data_with_the_identity() -> None:
    _, value = parse_event(llm_call("bot-1", team="search")).to_kafka()
    data = json.loads(value)["data"]
    assert list(data)[:7] == [*IDENTITY, "config"]
    assert (data["agent_id"], data["team"], data["project"]) == ("bot-1", "search", None)


def test_an_enveloped_error_parses_with_its_time_id_and_source() -> None:
    data = {"agent_id": "bot-2", "task_type": "qa", "provider": "openai", "model": "gpt-4o"}
    at = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    raw = error_event({**data, "error": {"message": "m"}}, time=at, event_id="0" * 32)
    parsed = parse_event(raw)
    assert (parsed.type, parsed.source, parsed.time, str(parsed.id)) == (
        "agent.error",
        "bot-2",
        at,
        "00000000-0000-0000-0000-000000000000",
    )
    assert envelope("agent.error", data, source="sdk-1")["source"] == "sdk-1"
