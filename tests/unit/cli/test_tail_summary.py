"""`finops tail`'s one line per record shows what the record is about, whatever its topic."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace

import pytest

from finops.cli.commands.tail import BinaryValue, _print_record, _record_value, _summary
from finops.common import dead_letters
from finops.common.alerts import Alert
from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.dead_letters import dlq_headers, header_map
from finops.experiments.domain.tagged import Tagged, encode_tagged
from finops.healer.adapters.circuits import ProviderOutcome
from finops.optimizer.domain.drift_alerts import drift_alert
from finops.optimizer.domain.engine import ArmSpec
from finops.optimizer.service_layer.commands import OperatorChange


@pytest.fixture(autouse=True)
def parking_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process that parks the dead letters of these tests (``x-instance``)."""
    monkeypatch.setattr(dead_letters, "instance_name", lambda: "healer-0:7")


def test_a_cost_event_shows_its_agent_task_model_and_cost():
    event = {
        "type": "agent.llm_call",
        "id": "e1",
        "data": {
            "agent_id": "a1",
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o",
            "cost_usd": 0.0125,
            "latency_ms": 840,
        },
    }
    assert _summary(event) == (
        "type=agent.llm_call agent_id=a1 task_type=summarize provider=openai model=gpt-4o"
        " cost_usd=0.0125 latency_ms=840"
    )


def test_an_experiment_announcement_shows_its_kind_name_and_status():
    started = {
        "kind": "started",
        "experiment_id": "x1",
        "name": "cheaper-summaries",
        "task_type": "summarize",
        "status": "running",
        "at": "2026-01-01T00:00:00+00:00",
    }
    assert _summary(started) == (
        "kind=started name=cheaper-summaries status=running task_type=summarize"
    )
    stopped = {**started, "kind": "stopped", "status": "stopped"}
    assert _summary(stopped) == (
        "kind=stopped name=cheaper-summaries status=stopped task_type=summarize"
    )


def test_a_decision_shows_its_winner():
    decision = {
        "kind": "decision",
        "experiment_id": "x1",
        "name": "cheaper-summaries",
        "task_type": "summarize",
        "status": "decided",
        "winner": "small",
        "reason": "small is cheaper at the same quality",
        "winner_arm": {"model": "gpt-4o-mini", "provider": "openai", "config": {}},
        "losers": [],
        "n": [500, 500],
    }
    assert _summary(decision) == (
        "kind=decision name=cheaper-summaries status=decided winner=small task_type=summarize"
        ' reason="small is cheaper at the same quality"'
    )
    no_winner = {**decision, "status": "stopped", "winner": None, "winner_arm": None}
    no_winner["reason"] = "guardrail broken:\nquality ratio 0.81 below min_quality_ratio 0.95"
    assert _summary(no_winner) == (
        "kind=decision name=cheaper-summaries status=stopped task_type=summarize"
        ' reason="guardrail broken: quality ratio 0.81 below min_quality_ratio 0.95"'
    )


def test_a_reason_or_an_error_holding_a_bidi_override_is_shown_escaped():
    # raw, U+202E would show the rest of the operator's line reversed
    assert _summary({"kind": "opened", "reason": "rate \u202e0.9"}) == (
        'kind=opened reason="rate \\u202e0.9"'
    )
    headers = header_map(dlq_headers("t", 0, 0, ValueError("bad \u202eevil"), 1, "s"))
    assert 'error="ValueError: bad \\u202eevil"' in _summary({"kind": "k"}, headers)
    assert "\u202e" not in _summary({"kind": "k"}, headers)


def test_a_dead_letter_shows_where_it_came_from_and_why_it_was_given_up():
    error = ValueError("1 validation error for LlmCall\ndata.cost_usd\n  Input should be >= 0")
    parked = dlq_headers("agent.cost.v1", 2, 17, error, 1, "optimizer")
    headers = header_map([("traceparent", b"00-abc-def-01"), *parked])
    event = {"type": "agent.llm_call", "data": {"agent_id": "a1", "cost_usd": -1}}
    assert _summary(event, headers) == (
        'origin=agent.cost.v1[2]@17 by=optimizer@healer-0:7 error="ValueError: 1 validation'
        ' error for LlmCall data.cost_usd Input should be >= 0" type=agent.llm_call agent_id=a1'
        " cost_usd=-1"
    )


def test_a_dead_letter_that_is_not_json_still_shows_its_error():
    headers = header_map(dlq_headers("agent.cost.v1", 0, 3, ValueError("not JSON"), 1, "healer"))
    assert _summary("{oops", headers) == (
        'origin=agent.cost.v1[0]@3 by=healer@healer-0:7 error="ValueError: not JSON" {oops'
    )


def test_a_long_error_is_cut_to_keep_the_line_short():
    headers = header_map(dlq_headers("t", 0, 0, RuntimeError("x" * 1000), 1, "s"))
    line = _summary({"kind": "k"}, headers)
    assert line == f'origin=t[0]@0 by=s@healer-0:7 error="RuntimeError: {"x" * 185}…" kind=k'


def test_a_dead_letter_parked_by_a_version_that_did_not_name_its_instance_shows_the_service():
    parked = [(k, v) for k, v in dlq_headers("t", 0, 0, ValueError("bad"), 1, "s")]
    headers = header_map([(k, v) for k, v in parked if k != "x-instance"])
    assert _summary({"kind": "k"}, headers) == 'origin=t[0]@0 by=s error="ValueError: bad" kind=k'


def test_a_record_with_none_of_the_fields_shows_its_json():
    assert _summary({"team": "team-a", "threshold": 0.8}) == '{"team":"team-a","threshold":0.8}'


def test_a_field_with_a_line_break_or_a_terminal_escape_stays_on_its_line_quoted():
    # ingest takes control characters in an agent's strings (only NUL is refused): printed
    # raw, this event forged a second record line and coloured the operator's terminal
    event = {
        "type": "agent.llm_call",
        "data": {
            "agent_id": "bot",
            "task_type": "qa\nagent.cost.v1[0]@99 agent_id=admin",
            "model": "gpt-4o-mini\x1b[31mRED",
            "provider": "open\u202eai",
        },
    }
    line = _summary(event)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert line == (
        'type=agent.llm_call agent_id=bot task_type="qa\\nagent.cost.v1[0]@99 agent_id=admin"'
        ' provider="open\\u202eai" model="gpt-4o-mini\\u001b[31mRED"'
    )
    assert _summary("raw\ntext") == '"raw\\ntext"'


def test_a_breaker_state_shows_whether_it_is_open_closed_or_half_open():
    opened = CircuitState(
        "openai", "gpt-4o", CircuitStatus.OPEN, 0.6, 20, 12, 60.0,
        opened_at=0.0, next_probe_at=30.0, reason="failure rate 0.60 over 20 calls",
        updated_at=0.0,
    )  # fmt: skip
    assert _summary(_record_value(opened.to_json())) == (
        "state=open provider=openai model=gpt-4o failure_rate=0.6"
        ' reason="failure rate 0.60 over 20 calls"'
    )
    never = replace(opened, state=CircuitStatus.CLOSED, failure_rate=0.0, reason="never opened")
    assert _summary(_record_value(never.to_json())).startswith("state=closed provider=openai")


def test_an_alert_shows_its_subject_severity_and_message():
    abort = Alert(
        "healing_abort", "a1", "openai/gpt-4o", "warning",
        "content_filter on openai/gpt-4o: the provider refused the prompt", "healer",
        {"advice_id": "h1", "agent_id": "bot", "kind": "content_filter", "rule": "refusal"},
    )  # fmt: skip
    assert _summary(abort.to_dict()) == (
        "kind=healing_abort subject=openai/gpt-4o severity=warning"
        ' message="content_filter on openai/gpt-4o: the provider refused the prompt"'
    )
    drift = drift_alert({"task_type": "qa", "arm": "gpt-4o|openai|default"}, "event-1", "kept")
    assert _summary(drift) == (
        'kind=drift subject=qa/gpt-4o|openai|default severity=warning message="quality of'
        ' gpt-4o|openai|default on qa changed; kept"'
    )


def test_a_healing_advice_shows_its_remedy():
    advice = {
        "advice_id": "h1",
        "kind": "rate_limit",
        "retryable": True,
        "remedy": {"action": "retry", "delay_ms": 800, "model": None, "provider": None},
        "reason": "rate limited: wait as the provider asks",
        "breaker": "closed",
        "agent_id": "bot",
        "task_type": "qa",
        "provider": "openai",
        "model": "gpt-4o",
    }
    assert _summary(advice) == (
        "kind=rate_limit agent_id=bot task_type=qa provider=openai model=gpt-4o"
        ' remedy.action=retry reason="rate limited: wait as the provider asks"'
    )


def test_a_provider_outcome_shows_its_verdict_as_json():
    success = ProviderOutcome("e1", "openai", "gpt-4o", failed=False, at=0.0)
    assert _summary(_record_value(success.to_json())) == (
        "provider=openai model=gpt-4o failed=false"
    )
    fault = ProviderOutcome("e2", "openai", "gpt-4o", failed=True, at=0.0, kind="server_error")
    assert _summary(_record_value(fault.to_json())) == (
        "kind=server_error provider=openai model=gpt-4o failed=true"
    )


def test_an_operator_change_shows_what_it_changes():
    change = OperatorChange.offer_arm(ArmSpec("gpt-4o-mini", "openai")).numbered(4)
    assert _summary(_record_value(change.to_json())) == (
        'kind=offer_arm seq=4 args={"model":"gpt-4o-mini","provider":"openai","config":{}}'
    )


def test_a_slice_of_tagged_events_shows_how_many_it_holds():
    events = [Tagged(f"e{i}", "x1", "B", 0.01, True, 420.0, None) for i in range(100)]
    line = _summary(_record_value(encode_tagged(events)))
    assert line.startswith('items=100 [["e0","x1","B",0.01,true,420.0,null],')
    assert len(line) < 200


def test_a_compressed_record_shows_its_size_and_key_not_its_bytes():
    shard = zlib.compress(json.dumps({"policy": {"arms": list(range(500))}}).encode())
    value = _record_value(shard)
    assert value == BinaryValue(len(shard))
    assert _summary(value, key=b"3") == f"key=3 <binary, {len(shard)} bytes>"


def test_a_record_of_text_that_is_not_json_is_still_shown_as_text():
    assert _record_value("caf\u00e9 {".encode()) == "caf\u00e9 {"
    assert _record_value(b"") is None


@dataclass(frozen=True)
class Record:
    """A consumed record, as aiokafka gives it."""

    value: bytes | None
    topic: str = "finops.optimizer-shards.v1"
    partition: int = 3
    offset: int = 7
    key: bytes = b"3"
    headers: tuple[tuple[str, bytes], ...] = ()


def test_a_compressed_record_in_json_has_its_size_not_its_bytes(capsys):
    _print_record(Record(b"\x78\x9c" + bytes(1232)), BinaryValue(1234), json_out=True)
    assert json.loads(capsys.readouterr().out) == {
        "topic": "finops.optimizer-shards.v1",
        "partition": 3,
        "offset": 7,
        "key": "3",
        "headers": {},
        "value": None,
        "binary_bytes": 1234,
    }


def test_a_record_with_no_value_is_told_from_a_record_holding_null(capsys):
    dead = (("x-error", b"not JSON"), ("x-original-topic", b"agent.cost.v1"))
    for raw in (None, b"", b"null"):
        _print_record(Record(raw, topic="agent.cost.v1.dlq", headers=dead), None, json_out=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["value"], line.get("empty")) for line in lines] == [
        (None, True),
        (None, True),
        (None, None),
    ]
    for raw in (None, b"null"):
        _print_record(Record(raw, topic="agent.cost.v1.dlq"), _record_value(raw), json_out=False)
    no_value, null = capsys.readouterr().out.splitlines()
    assert no_value.endswith("(no value)") and null.endswith(" null"), (no_value, null)


def test_an_error_event_shows_its_error_kind():
    event = {
        "type": "agent.error",
        "id": "e1",
        "data": {
            "agent_id": "a1",
            "task_type": "qa",
            "provider": "openai",
            "model": "gpt-4o",
            "error": {"kind": "rate_limit", "status_code": 429, "message": "slow down"},
            "attempt": 1,
        },
    }
    assert _summary(event) == (
        "type=agent.error error.kind=rate_limit agent_id=a1 task_type=qa provider=openai"
        " model=gpt-4o"
    )


def test_a_logged_recommendation_shows_whom_it_answered_and_why():
    logged = {
        "recommendation_id": "r1",
        "task_type": "qa",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "config": {},
        "arm": "gpt-4o-mini|openai|default",
        "propensity": 0.9,
        "reason": "cheapest arm within the quality floor",
        "explored": False,
        "agent_id": "bot",
        "features": {},
    }
    assert _summary(logged) == (
        "agent_id=bot task_type=qa provider=openai model=gpt-4o-mini"
        ' reason="cheapest arm within the quality floor"'
    )


@pytest.mark.parametrize(("raw", "line"), [(b"null", "null"), (b"true", "true"), (b"7", "7")])
def test_a_record_that_is_a_json_scalar_shows_as_json_not_python(raw: bytes, line: str) -> None:
    assert _summary(_record_value(raw)) == line


def test_a_record_nested_deeper_than_the_parser_goes_shows_as_text() -> None:
    raw = b"[" * 100_000
    value = _record_value(raw)
    assert value == raw.decode()
    assert _summary(value).startswith("[[[")


def test_a_sentence_field_holding_an_object_is_quoted_json() -> None:
    assert _summary({"kind": "drift", "message": {"a": 1}}) == 'kind=drift message="{\\"a\\":1}"'
