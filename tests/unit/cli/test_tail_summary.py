"""`finops tail`'s one line per record shows what the record is about, whatever its topic."""

from __future__ import annotations

import pytest

from finops.cli.commands.tail import _summary
from finops.common import dead_letters
from finops.common.dead_letters import dlq_headers, header_map


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
    assert _summary({"subject": "team-a", "threshold": 0.8}) == (
        '{"subject": "team-a", "threshold": 0.8}'
    )


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
