"""Event schemas: valid events, every bad input, usage normalisation, Kafka, JSON Schema."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from finops.common.events import (
    ERROR,
    ERROR_KIND_ALIASES,
    ERROR_KINDS,
    EVENT_TYPES,
    ErrorEvent,
    Event,
    LlmCallEvent,
    Usage,
    envelope,
    event_json_schemas,
    llm_call_event,
    parse_event,
    stamp_principal,
    validate_batch,
    write_json_schemas,
)
from finops.common.events.schemas import MAX_ERROR_MESSAGE
from finops.common.events.usage import normalize_usage

EVENT_ID = "6f1c0f5e-2a8e-4a53-9b7e-0c7f2d0c9a11"

# Real-looking raw usage bodies, as returned by the provider APIs.
ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 18000,
    "output_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
    "service_tier": "standard",
}
OPENAI_CHAT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 192,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
OPENAI_RESPONSES_USAGE = {
    "input_tokens": 5120,
    "input_tokens_details": {"cached_tokens": 4096},
    "output_tokens": 812,
    "output_tokens_details": {"reasoning_tokens": 640},
    "total_tokens": 5932,
}


def llm_call(**data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": "agent-7",
        "team": "search",
        "project": "checkout",
        "task_type": "summarize",
        "provider": "openai",
        "model": "gpt-4o",
        "config": {"temperature": 0.2, "max_tokens": 1024, "prompt_version": "v7"},
        "usage": {"input_tokens": 1200, "output_tokens": 300},
        "latency_ms": 850,
        "ttft_ms": 120.5,
        "success": True,
    }
    body.update(data)
    return llm_call_event(body, time="2025-06-01T12:00:00.250+02:00", event_id=EVENT_ID)


def error_event(**data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": "agent-7",
        "task_type": "summarize",
        "provider": "anthropic",
        "model": "claude-sonnet-4-20250514",
        "error": {
            "kind": "rate_limit",
            "status_code": 429,
            "provider_code": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit",
            "retry_after_ms": 2000,
        },
        "request": {"input_tokens": 15000, "max_tokens": 1024},
        "attempt": 2,
        "remedy": {"advice_id": "adv-42"},
    }
    body.update(data)
    return envelope(ERROR, body, time="2025-06-01T10:00:01Z", event_id=uuid.UUID(int=7))


# ----------------------------------------------------------------------------- valid events
def test_valid_llm_call_all_fields() -> None:
    raw = llm_call(
        cost_usd=0.0123,
        quality=0.85,
        experiment={"id": "exp-cheap-model", "variant": "B"},
        decision={"recommendation_id": "rec-9", "propensity": 0.25},
        remedy={"advice_id": "adv-1"},
        features={"prompt_len": 2006.0, "n_tools": 3},
        config={"temperature": 0.2, "max_tokens": 1024, "prompt_version": "v7", "stop": ["\n"]},
    )
    ev = parse_event(raw)
    assert isinstance(ev, LlmCallEvent) and isinstance(ev, Event)
    assert ev.id == uuid.UUID(EVENT_ID)
    assert ev.type == "agent.llm_call"
    assert ev.source == "agent-7"
    assert ev.time == datetime(2025, 6, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert ev.time.utcoffset() is not None
    assert ev.specversion == "1.0"
    d = ev.data
    assert (d.agent_id, d.team, d.project, d.task_type) == (
        "agent-7",
        "search",
        "checkout",
        "summarize",
    )
    assert (d.provider, d.model) == ("openai", "gpt-4o")
    assert d.config.temperature == 0.2 and d.config.max_tokens == 1024
    assert d.config.prompt_version == "v7"
    assert d.config.model_extra == {"stop": ["\n"]}
    assert d.usage == Usage(input_tokens=1200, output_tokens=300)
    assert d.usage.cached_input_tokens == 0 and d.usage.reasoning_tokens == 0
    assert d.cost_usd == 0.0123 and d.latency_ms == 850.0 and d.ttft_ms == 120.5
    assert d.success is True and d.quality == 0.85
    assert (d.experiment.id, d.experiment.variant) == ("exp-cheap-model", "B")
    assert d.decision.propensity == 0.25 and d.decision.recommendation_id == "rec-9"
    assert d.remedy.advice_id == "adv-1"
    assert d.features == {"prompt_len": 2006.0, "n_tools": 3.0}
    assert d.cost_source is None and d.price_version is None and d.principal is None
    assert ev.agent_id == "agent-7"


def test_valid_llm_call_minimal() -> None:
    raw = llm_call()
    for key in ("team", "project", "config", "ttft_ms"):
        del raw["data"][key]
    del raw["specversion"]  # defaults to "1.0"
    ev = parse_event(raw)
    assert ev.specversion == "1.0"
    assert ev.data.team is None and ev.data.config.model_dump(exclude_none=True) == {}
    assert ev.data.cost_usd is None and ev.data.features is None


@pytest.mark.parametrize("latency", [850, 850.5, 0])
def test_latency_accepts_json_numbers(latency: float) -> None:
    ev = parse_event(json.dumps(llm_call(latency_ms=latency)))
    assert ev.data.latency_ms == float(latency)


def test_valid_error_event() -> None:
    ev = parse_event(error_event())
    assert isinstance(ev, ErrorEvent)
    e = ev.data.error
    assert (e.kind, e.status_code, e.provider_code, e.retry_after_ms) == (
        "rate_limit",
        429,
        "rate_limit_error",
        2000.0,
    )
    assert ev.data.request.input_tokens == 15000 and ev.data.request.max_tokens == 1024
    assert ev.data.attempt == 2 and ev.data.remedy.advice_id == "adv-42"


def test_error_event_minimal_and_defaults() -> None:
    raw = error_event(error={"kind": "timeout", "message": "Request timed out."})
    del raw["data"]["request"], raw["data"]["attempt"], raw["data"]["remedy"]
    ev = parse_event(raw)
    assert ev.data.attempt == 1 and ev.data.request is None
    assert ev.data.error.status_code is None


def test_error_kind_is_an_optional_hint_and_old_names_read_as_new_ones() -> None:
    assert parse_event(error_event(error={"message": "m"})).data.error.kind is None
    read = {
        old: parse_event(error_event(error={"kind": old, "message": "m"})).data.error.kind
        for old in ERROR_KIND_ALIASES
    }
    assert read == ERROR_KIND_ALIASES
    assert set(ERROR_KINDS) >= set(ERROR_KIND_ALIASES.values())
    for kind in ERROR_KINDS:
        event = error_event(error={"kind": kind, "message": "m"})
        assert parse_event(event).data.error.kind == kind


def test_error_type_and_headers_are_kept_with_lower_case_names() -> None:
    error = {
        "message": "Too many tokens, please wait before trying again.",
        "type": "ThrottlingException",
        "headers": {"Retry-After": "20", "x-amzn-ErrorType": "ThrottlingException:http://x/"},
    }
    parsed = parse_event(error_event(error=error)).data.error
    assert (parsed.type, parsed.headers) == (
        "ThrottlingException",
        {"retry-after": "20", "x-amzn-errortype": "ThrottlingException:http://x/"},
    )
    _, value = parse_event(error_event(error=error)).to_kafka()
    assert json.loads(value)["data"]["error"]["headers"]["retry-after"] == "20"


def test_error_message_is_truncated_not_rejected() -> None:
    ev = parse_event(error_event(error={"kind": "other", "message": "x" * 10_000}))
    assert len(ev.data.error.message) == MAX_ERROR_MESSAGE
    assert ev.data.error.message.endswith("\u2026")


def test_event_types_registry() -> None:
    assert EVENT_TYPES == {"agent.llm_call": LlmCallEvent, "agent.error": ErrorEvent}


# ----------------------------------------------------------------------------- bad inputs
def _mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with value=DELETE, remove) a dotted path in a deep copy of ``base``."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()
LLM = llm_call()
ERR = error_event()

BAD_CASES: list[tuple[dict[str, Any], str, str]] = [
    # (event, expected dotted field, expected error type)
    (_mutate(LLM, "data.latency_ms", "fast"), "data.latency_ms", "float_type"),
    (_mutate(LLM, "data.latency_ms", "850"), "data.latency_ms", "float_type"),
    (_mutate(LLM, "data.latency_ms", -1), "data.latency_ms", "greater_than_equal"),
    (_mutate(LLM, "data.usage.input_tokens", -5), "data.usage.input_tokens", "greater_than_equal"),
    (_mutate(LLM, "data.usage.output_tokens", "300"), "data.usage.output_tokens", "int_type"),
    (_mutate(LLM, "data.usage.output_tokens", 300.0), "data.usage.output_tokens", "int_type"),
    (
        _mutate(LLM, "data.usage.cached_input_tokens", True),
        "data.usage.cached_input_tokens",
        "int_type",
    ),
    (
        _mutate(LLM, "data.usage.reasoning_tokens", -1),
        "data.usage.reasoning_tokens",
        "greater_than_equal",
    ),
    (_mutate(LLM, "data.usage.input_tokens", DELETE), "data.usage.input_tokens", "missing"),
    (_mutate(LLM, "type", "agent.nope"), "type", "union_tag_invalid"),
    (_mutate(LLM, "type", DELETE), "type", "union_tag_not_found"),
    (_mutate(LLM, "data.model", DELETE), "data.model", "missing"),
    (_mutate(LLM, "data.model", ""), "data.model", "string_too_short"),
    (_mutate(LLM, "data.agent_id", "a" * 129), "data.agent_id", "string_too_long"),
    (_mutate(LLM, "data.agent_id", 42), "data.agent_id", "string_type"),
    (_mutate(LLM, "source", "s" * 129), "source", "string_too_long"),
    (_mutate(LLM, "data.team", "t" * 129), "data.team", "string_too_long"),
    (_mutate(LLM, "data.surprise", 1), "data.surprise", "extra_forbidden"),
    (_mutate(LLM, "data.usage.total", 1), "data.usage.total", "extra_forbidden"),
    (_mutate(LLM, "extension", 1), "extension", "extra_forbidden"),
    (_mutate(LLM, "time", "2025-06-01T12:00:00"), "time", "timezone_aware"),
    (_mutate(LLM, "time", "yesterday"), "time", "datetime_from_date_parsing"),
    (_mutate(LLM, "id", "not-a-uuid"), "id", "uuid_parsing"),
    (_mutate(LLM, "specversion", "0.3"), "specversion", "literal_error"),
    (_mutate(LLM, "data.success", "yes"), "data.success", "bool_type"),
    (_mutate(LLM, "data.cost_usd", -0.01), "data.cost_usd", "greater_than_equal"),
    (_mutate(LLM, "data.quality", 1.5), "data.quality", "less_than_equal"),
    (_mutate(LLM, "data.config.temperature", "hot"), "data.config.temperature", "float_type"),
    (_mutate(LLM, "data.config.nested", {"a": 1}), "data.config.nested", "value_error"),
    (_mutate(LLM, "data.config.long", "x" * 300), "data.config.long", "value_error"),
    (
        _mutate(LLM, "data.decision", {"recommendation_id": "r", "propensity": 0}),
        "data.decision.propensity",
        "greater_than",
    ),
    (
        _mutate(LLM, "data.decision", {"recommendation_id": "r", "propensity": 1.01}),
        "data.decision.propensity",
        "less_than_equal",
    ),
    (_mutate(LLM, "data.experiment", {"id": "e"}), "data.experiment.variant", "missing"),
    (
        _mutate(LLM, "data.features", {f"f{i}": 1.0 for i in range(33)}),
        "data.features",
        "too_long",
    ),
    (_mutate(LLM, "data.features", {"x": "big"}), "data.features.x", "float_type"),
    (
        _mutate(
            LLM, "data.usage", {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 11}
        ),
        "data.usage",
        "value_error",
    ),
    (
        _mutate(LLM, "data.usage", {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6}),
        "data.usage",
        "value_error",
    ),
    (
        _mutate(LLM, "data.usage", {"prompt_tokens": "x", "completion_tokens": 5}),
        "data.usage",
        "value_error",
    ),
    (_mutate(ERR, "data.error.kind", "meltdown"), "data.error.kind", "literal_error"),
    (
        _mutate(ERR, "data.error.headers", {"Retry-After": "1", "retry-after": "2"}),
        "data.error.headers",
        "value_error",
    ),
    (
        _mutate(ERR, "data.error.headers", {f"x-h{i}": "v" for i in range(33)}),
        "data.error.headers",
        "value_error",
    ),
    (
        _mutate(ERR, "data.error.headers", {"retry after": "1"}),
        "data.error.headers.retry after.[key]",
        "string_pattern_mismatch",
    ),
    (
        _mutate(ERR, "data.error.headers", {"x": "v" * 513}),
        "data.error.headers.x",
        "string_too_long",
    ),
    (_mutate(ERR, "data.error.headers", {"x": 5}), "data.error.headers.x", "string_type"),
    (_mutate(ERR, "data.error.type", ""), "data.error.type", "string_too_short"),
    (_mutate(ERR, "data.error.status_code", "429"), "data.error.status_code", "int_type"),
    (_mutate(ERR, "data.attempt", 0), "data.attempt", "greater_than_equal"),
    (_mutate(ERR, "data.model", DELETE), "data.model", "missing"),
    (
        _mutate(ERR, "data.request.input_tokens", -1),
        "data.request.input_tokens",
        "greater_than_equal",
    ),
    (_mutate(ERR, "data.usage", {}), "data.usage", "extra_forbidden"),
]


@pytest.mark.parametrize(("event", "field", "err_type"), BAD_CASES)
def test_single_bad_event_fails(event: dict[str, Any], field: str, err_type: str) -> None:
    with pytest.raises(ValidationError):
        parse_event(event)
    result = validate_batch([LLM, event])
    assert not result.ok and result.events is None
    assert {(e["index"], e["field"], e["type"]) for e in result.errors} == {(1, field, err_type)}
    assert all(isinstance(e["message"], str) and e["message"] for e in result.errors)


def test_batch_reports_every_bad_index_and_field() -> None:
    batch = [LLM, *[case[0] for case in BAD_CASES], ERR, "not an object"]
    expected = {(i + 1, field, t) for i, (_, field, t) in enumerate(BAD_CASES)}
    for payload, not_object in (
        (batch, "model_attributes_type"),
        (json.dumps(batch).encode(), "dict_type"),
    ):
        result = validate_batch(payload)
        assert result.events is None
        got = {(e["index"], e["field"], e["type"]) for e in result.errors}
        assert got == expected | {(len(batch) - 1, "", not_object)}
        assert [e["index"] for e in result.errors] == sorted(e["index"] for e in result.errors)


def test_batch_multiple_errors_in_one_event() -> None:
    bad = _mutate(_mutate(LLM, "data.latency_ms", "fast"), "data.usage.input_tokens", -1)
    result = validate_batch([bad, LLM, bad])
    got = [(e["index"], e["field"]) for e in result.errors]
    assert sorted(got) == [
        (0, "data.latency_ms"),
        (0, "data.usage.input_tokens"),
        (2, "data.latency_ms"),
        (2, "data.usage.input_tokens"),
    ]
    assert [i for i, _ in got] == [0, 0, 2, 2]


def test_batch_ok_and_not_a_list() -> None:
    ok = validate_batch([LLM, ERR])
    assert ok.ok and ok.errors == []
    assert [type(e) for e in ok.events] == [LlmCallEvent, ErrorEvent]
    notlist = validate_batch({"events": []})
    assert notlist.events is None
    assert notlist.errors == [
        {"index": None, "field": "", "message": "Input should be a valid list", "type": "list_type"}
    ]
    bad_json = validate_batch(b"[{")
    assert bad_json.errors[0]["type"] == "json_invalid"


def test_a_nul_character_in_any_string_is_refused_with_its_field() -> None:
    # PostgreSQL's text cannot hold NUL: an event carrying one in its task type stopped the
    # experiments' intake (its task-type insert failed) for good.
    in_task = llm_call(task_type="sum\x00marize")
    in_config_key = llm_call(config={"prompt\x00version": "v7"})
    in_message = error_event()
    in_message["data"]["error"]["message"] = "slow\x00down"
    for batch in ([LLM, in_task, in_config_key, in_message], json.dumps([LLM, in_task])):
        result = validate_batch(batch)
        assert result.events is None
        assert all(e["type"] == "invalid_text" for e in result.errors)
    assert [(e["index"], e["field"]) for e in validate_batch([LLM, in_task]).errors] == [
        (1, "data.task_type")
    ]
    assert [(e["index"], e["field"]) for e in validate_batch([in_config_key]).errors] == [
        (0, "data.config.prompt\x00version")
    ]
    assert [(e["index"], e["field"]) for e in validate_batch([in_message]).errors] == [
        (0, "data.error.message")
    ]


def test_a_record_with_a_nul_character_does_not_decode() -> None:
    # one accepted before ingest refused them: consumers dead-letter it instead of storing it
    value = json.dumps(llm_call(task_type="sum\x00marize")).encode()
    assert b"\\u0000" in value
    with pytest.raises(ValueError, match="NUL"):
        Event.from_kafka(value)
    escaped_backslash = json.dumps(llm_call(task_type="sum\\u0000marize")).encode()
    assert Event.from_kafka(escaped_backslash).data.task_type == "sum\\u0000marize"


# ----------------------------------------------------------------------------- usage
def test_anthropic_raw_usage_normalizes() -> None:
    u = Usage.model_validate(ANTHROPIC_USAGE)
    # Anthropic input_tokens (12) EXCLUDES cache reads/writes: canonical input counts them all.
    assert u == Usage(
        input_tokens=12 + 2000 + 18000,
        output_tokens=500,
        cached_input_tokens=18000,
        cache_write_tokens=2000,
        cache_write_1h_tokens=0,
        reasoning_tokens=0,
    )
    assert u.uncached_input_tokens == 12


def test_anthropic_1h_cache_and_missing_creation_total() -> None:
    u = Usage.model_validate(
        {
            "input_tokens": 40,
            "cache_read_input_tokens": 0,
            "output_tokens": 90,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 3000,
            },
        }
    )
    assert (u.input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (4040, 4000, 3000)


def test_openai_chat_raw_usage_normalizes() -> None:
    u = Usage.model_validate(OPENAI_CHAT_USAGE)
    # prompt_tokens already include the cached ones; completion includes reasoning.
    assert u == Usage(
        input_tokens=2006, output_tokens=300, cached_input_tokens=1920, reasoning_tokens=192
    )
    assert u.uncached_input_tokens == 86


def test_openai_chat_null_details() -> None:
    u = Usage.model_validate(
        {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": None}
    )
    assert u == Usage(input_tokens=10, output_tokens=3)


def test_openai_responses_raw_usage_normalizes() -> None:
    u = Usage.model_validate(OPENAI_RESPONSES_USAGE)
    assert u == Usage(
        input_tokens=5120, output_tokens=812, cached_input_tokens=4096, reasoning_tokens=640
    )


def test_gemini_and_bedrock_raw_usage_normalize() -> None:
    gemini = {
        "promptTokenCount": 1000,
        "candidatesTokenCount": 200,
        "thoughtsTokenCount": 300,
        "cachedContentTokenCount": 600,
        "totalTokenCount": 1500,
    }
    assert Usage.model_validate(gemini) == Usage(
        input_tokens=1000, output_tokens=500, cached_input_tokens=600, reasoning_tokens=300
    )
    bedrock = {
        "inputTokens": 50,
        "outputTokens": 20,
        "totalTokens": 2070,
        "cacheReadInputTokens": 1500,
        "cacheWriteInputTokens": 500,
    }
    assert Usage.model_validate(bedrock) == Usage(
        input_tokens=2050, output_tokens=20, cached_input_tokens=1500, cache_write_tokens=500
    )


def test_raw_usage_inside_events_and_json() -> None:
    ev = parse_event(json.dumps(llm_call(provider="anthropic", usage=ANTHROPIC_USAGE)))
    assert ev.data.usage.input_tokens == 20012 and ev.data.usage.cached_input_tokens == 18000
    ev = parse_event(llm_call(model="o3-mini", usage=OPENAI_CHAT_USAGE))
    assert ev.data.usage.reasoning_tokens == 192
    # after normalisation the canonical form round-trips
    again = parse_event(ev.model_dump(mode="json"))
    assert again == ev


def test_canonical_with_total_tokens_and_mixing_rejected() -> None:
    assert normalize_usage({"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}) == {
        "input_tokens": 1,
        "output_tokens": 2,
    }
    with pytest.raises(ValidationError, match="mixes canonical fields"):
        Usage.model_validate(
            {"prompt_tokens": 10, "completion_tokens": 2, "cached_input_tokens": 1}
        )


# ----------------------------------------------------------------------------- kafka
def test_kafka_round_trip_llm_call() -> None:
    ev = parse_event(
        llm_call(
            usage=OPENAI_CHAT_USAGE,
            features={"a": 1.5},
            experiment={"id": "e", "variant": "A"},
            config={"temperature": 0.0, "stop": ["\n"], "seed": None},
        )
    )
    key, value = ev.to_kafka()
    assert key == b"agent-7"
    assert isinstance(value, bytes) and b" " not in value.replace(b"\\n", b"")  # compact
    back = Event.from_kafka(value)
    assert back == ev and isinstance(back, LlmCallEvent)
    assert LlmCallEvent.from_kafka(value) == ev
    assert json.loads(value)["id"] == EVENT_ID


def test_kafka_round_trip_error_and_wrong_class() -> None:
    ev = parse_event(error_event())
    key, value = ev.to_kafka()
    assert key == b"agent-7"
    assert Event.from_kafka(value) == ev
    with pytest.raises(TypeError):
        LlmCallEvent.from_kafka(value)
    with pytest.raises(ValidationError):
        Event.from_kafka(b'{"type": "agent.llm_call"}')


def test_stamp_principal() -> None:
    ev = parse_event(llm_call(principal="spoofed"))
    stamped = stamp_principal(ev, "user-123")
    assert stamped.data.principal == "user-123"
    assert ev.data.principal == "spoofed"  # original untouched


# ----------------------------------------------------------------------------- json schema
def test_event_json_schemas() -> None:
    schemas = event_json_schemas()
    assert set(schemas) == {"agent.llm_call", "agent.error"}
    llm = schemas["agent.llm_call"]
    assert llm["$id"] == "urn:finops:event:agent.llm_call:v1"
    assert llm["properties"]["type"]["const"] == "agent.llm_call"
    assert set(llm["required"]) >= {"id", "type", "source", "time", "data"}
    data = llm["$defs"]["LlmCallDataV1"]
    assert {"agent_id", "task_type", "provider", "model", "usage", "latency_ms", "success"} <= set(
        data["required"]
    )
    assert data["additionalProperties"] is False
    assert data["properties"]["cost_source"]["readOnly"] is True
    usage_titles = [s.get("title") or s.get("$ref") for s in data["properties"]["usage"]["anyOf"]]
    assert usage_titles == [
        "#/$defs/Usage",
        "OpenAIChatUsage",
        "OpenAIResponsesUsage",
        "AnthropicUsage",
    ]
    err = schemas["agent.error"]["$defs"]["ErrorInfo"]
    kind = err["properties"]["kind"]["anyOf"][0]
    assert kind["enum"] == [*ERROR_KINDS, *ERROR_KIND_ALIASES]
    assert "kind" not in err["required"]
    headers = err["properties"]["headers"]["anyOf"][0]
    assert (headers["maxProperties"], headers["additionalProperties"]["maxLength"]) == (32, 512)
    json.dumps(schemas)  # serialisable


def test_sample_events_conform_to_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = event_json_schemas()
    samples = [
        llm_call(),
        llm_call(usage=ANTHROPIC_USAGE),
        llm_call(usage=OPENAI_CHAT_USAGE),
        llm_call(usage=OPENAI_RESPONSES_USAGE),
        error_event(),
        error_event(error={"message": "Overloaded", "headers": {"Retry-After": "20"}}),
        error_event(error={"kind": "connection", "message": "Connection error.", "type": "x"}),
    ]
    for s in samples:
        jsonschema.validate(s, schemas[s["type"]])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_mutate(LLM, "data.model", DELETE), schemas["agent.llm_call"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_mutate(LLM, "data.bogus", 1), schemas["agent.llm_call"])


def test_write_json_schemas(tmp_path: Any) -> None:
    paths = write_json_schemas(tmp_path)
    assert sorted(p.name for p in paths) == [
        "agent.error.v1.schema.json",
        "agent.llm_call.v1.schema.json",
    ]
    assert json.loads(paths[0].read_text())["$id"].startswith("urn:finops:event:")
