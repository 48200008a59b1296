"""Every reader decodes an event topic's records by the event type the topic carries: a valid
event of the other type is refused like a record that does not decode."""

from __future__ import annotations

import json

import pytest
from support import llm_call

from finops.common.events import (
    ErrorEvent,
    EventTopics,
    LlmCallEvent,
    WrongEventType,
    error_event,
)
from finops.common.topics import AGENT_COST, AGENT_ERROR, TOPIC_FOR_EVENT_TYPE

CALL = json.dumps(llm_call()).encode()
ERROR = json.dumps(
    error_event(
        {
            "agent_id": "bot",
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "error": {"status_code": 429, "message": "Rate limit reached"},
        }
    )
).encode()


def test_each_topic_decodes_the_type_ingest_publishes_to_it():
    topics = EventTopics()
    assert {
        event_type: topics.event_type(topic) for event_type, topic in TOPIC_FOR_EVENT_TYPE.items()
    } == {"agent.llm_call": "agent.llm_call", "agent.error": "agent.error"}
    assert isinstance(topics.decode(AGENT_COST.name, CALL), LlmCallEvent)
    assert isinstance(topics.decode(AGENT_ERROR.name, ERROR), ErrorEvent)


def test_an_event_of_the_other_type_is_refused_with_what_and_where():
    topics = EventTopics()
    with pytest.raises(WrongEventType) as refused:
        topics.decode(AGENT_ERROR.name, CALL)
    assert str(refused.value) == (
        "agent.llm_call event on agent.error.v1, which carries agent.error events only"
    )
    with pytest.raises(WrongEventType):
        topics.decode(AGENT_COST.name, ERROR)
    assert isinstance(refused.value, TypeError)  # readers catch it with what does not decode


def test_renamed_topics_carry_the_same_types():
    topics = EventTopics(cost="test.cost.1", error="test.error.1")
    assert isinstance(topics.decode("test.cost.1", CALL), LlmCallEvent)
    with pytest.raises(WrongEventType):
        topics.decode("test.error.1", CALL)
    with pytest.raises(ValueError, match="not an event topic"):
        topics.decode(AGENT_COST.name, CALL)
