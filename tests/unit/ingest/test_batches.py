"""The ingest domain: one bad event refuses the batch; ownership; pricing stamped."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from support import llm_call

from finops.ingest.domain.batches import Caller, parse_batch
from finops.ingest.domain.errors import (
    AgentMismatch,
    BatchTooLarge,
    InvalidBatch,
    MalformedBody,
    SourceMismatch,
)

AGENT = Caller(subject="user-1", agent_ids=frozenset({"user-1", "bot"}), may_write_any=False)


def call(agent: str = "bot", **data) -> dict:
    data.setdefault("model", "gpt-4o")
    data.setdefault("usage", {"input_tokens": 1000, "output_tokens": 100})
    return llm_call(agent, **data)


def error_event(agent: str = "bot") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "agent.error",
        "source": agent,
        "specversion": "1.0",
        "time": datetime.now(UTC).isoformat(),
        "data": {
            "agent_id": agent,
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o",
            "error": {"kind": "rate_limit", "status_code": 429, "message": "slow down"},
            "attempt": 1,
        },
    }


def encode(events) -> bytes:
    return json.dumps(events).encode()


def test_valid_batch_becomes_keyed_records_on_the_right_topics():
    events = [call(), error_event(), call(cost_usd=0.5)]
    records = parse_batch(encode(events), AGENT, 1000)
    assert [r.topic for r in records] == ["agent.cost.v1", "agent.error.v1", "agent.cost.v1"]
    assert {r.key for r in records} == {b"bot"}
    first, _, reported = (json.loads(r.value) for r in records)
    assert first["id"] == events[0]["id"]
    assert first["data"]["principal"] == "user-1"
    assert first["data"]["cost_source"] == "computed"
    assert first["data"]["cost_usd"] == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert reported["data"]["cost_source"] == "reported"
    assert reported["data"]["cost_usd"] == 0.5


def test_wrapped_form_is_accepted():
    records = parse_batch(json.dumps({"events": [call()]}).encode(), AGENT, 1000)
    assert len(records) == 1


def test_every_bad_index_and_field_is_listed():
    bad_tokens = call()
    bad_tokens["data"]["usage"]["input_tokens"] = -5
    wrong_type = call(latency_ms="fast")
    missing = call()
    del missing["data"]["model"]
    unknown = call()
    unknown["type"] = "agent.unknown"
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(encode([call(), bad_tokens, wrong_type, missing, unknown]), AGENT, 1000)
    details = caught.value.details
    by_index = {(d["index"], d["field"]) for d in details}
    assert (1, "data.usage.input_tokens") in by_index
    assert (2, "data.latency_ms") in by_index
    assert (3, "data.model") in by_index
    assert {d["index"] for d in details} == {1, 2, 3, 4}
    assert caught.value.status == 422


def test_invalid_json_and_non_batches_are_refused():
    with pytest.raises(MalformedBody) as caught:
        parse_batch(b"{not json", AGENT, 1000)
    assert caught.value.details[0]["type"] == "json_invalid"
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")
    with pytest.raises(MalformedBody):
        parse_batch(b"[{not json", AGENT, 1000)
    with pytest.raises(InvalidBatch):
        parse_batch(b'{"event": []}', AGENT, 1000)


def test_oversized_batch_is_refused():
    with pytest.raises(BatchTooLarge) as caught:
        parse_batch(encode([call() for _ in range(11)]), AGENT, 10)
    assert caught.value.status == 413


def test_events_for_another_agent_need_write_any():
    events = [call(), call(agent="someone-else")]
    with pytest.raises(AgentMismatch) as caught:
        parse_batch(encode(events), AGENT, 1000)
    assert caught.value.details == [
        {"index": 1, "field": "data.agent_id", "agent_id": "someone-else"}
    ]
    admin = Caller(subject="admin", agent_ids=frozenset({"admin"}), may_write_any=True)
    assert len(parse_batch(encode(events), admin, 1000)) == 2


def test_an_event_must_not_claim_another_source_than_its_caller():
    spoofed = call()
    spoofed["source"] = "someone-else"  # its own agent_id, but "emitted" by another agent
    with pytest.raises(SourceMismatch) as caught:
        parse_batch(encode([call(), spoofed]), AGENT, 1000)
    assert (caught.value.status, caught.value.code) == (403, "source_mismatch")
    assert caught.value.details == [{"index": 1, "field": "source", "source": "someone-else"}]
    as_user_id = call()
    as_user_id["source"] = "user-1"  # the caller's user id is the caller too
    assert len(parse_batch(encode([as_user_id]), AGENT, 1000)) == 1


def test_a_writer_for_any_agent_may_name_itself_or_that_agent_as_source():
    admin = Caller(
        subject="admin-id", agent_ids=frozenset({"admin-id", "root"}), may_write_any=True
    )
    for_agent, by_admin, elsewhere = call(agent="bot"), call(agent="bot"), call(agent="bot")
    by_admin["source"] = "root"
    elsewhere["source"] = "third-party"
    assert len(parse_batch(encode([for_agent, by_admin]), admin, 1000)) == 2
    with pytest.raises(SourceMismatch):
        parse_batch(encode([elsewhere]), admin, 1000)


def test_unknown_model_is_kept_unpriced():
    records = parse_batch(encode([call(model="my-private-finetune-x")]), AGENT, 1000)
    value = json.loads(records[0].value)
    assert value["data"]["cost_source"] == "unpriced"
    assert value["data"]["cost_usd"] is None
    assert records[0].cost_source == "unpriced"
