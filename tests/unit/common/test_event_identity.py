"""Both event types share one identity model; their JSON keeps the identity fields first."""

from __future__ import annotations

import json

from support import llm_call

from finops.common.events import ErrorData, LlmCallData, parse_event
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
