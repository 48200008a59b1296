"""Who reported each outcome reaches the breakers: the principal ingest stamped, else the
agent id; an owner counts and logs the trips it holds back because they do not hold without
the top faulter's faults."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support import llm_call

from finops.common.events import error_event
from finops.common.id_dedupe import IdDedupe
from finops.common.topics import AGENT_COST, AGENT_ERROR
from finops.healer.adapters.breaker_shards import BreakerShard
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.adapters.circuits_stream import OutcomeForwarder, breaker_config
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breakers import BreakerConfig
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings


def overloaded(agent: str, principal: str | None = None) -> bytes:
    event = error_event(
        {
            "agent_id": agent,
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o",
            "error": {"status_code": 503, "message": "The model is overloaded."},
        }
    )
    if principal is not None:  # as ingest stamps it
        event["data"]["principal"] = principal
    return json.dumps(event).encode()


def success(agent: str, principal: str | None = None) -> bytes:
    event = llm_call(agent, provider="openai", model="gpt-4o")
    if principal is not None:
        event["data"]["principal"] = principal
    return json.dumps(event).encode()


def forwarder() -> OutcomeForwarder:
    classifier = ErrorClassifier()
    return OutcomeForwarder(HealerSettings(), lambda: classifier)


def test_an_outcome_names_the_principal_ingest_stamped_else_the_agent_id():
    intake = forwarder()
    outcomes = [
        intake.outcome(AGENT_ERROR.name, overloaded("bot1", principal="user-1")),
        intake.outcome(AGENT_ERROR.name, overloaded("bot2")),
        intake.outcome(AGENT_COST.name, success("bot3", principal="user-3")),
        intake.outcome(AGENT_COST.name, success("bot4")),
    ]
    assert [o.agent if o else None for o in outcomes] == ["user-1", "bot2", "user-3", "bot4"]
    assert [o.failed if o else None for o in outcomes] == [True, True, False, False]


def test_the_agent_travels_with_the_outcome_and_an_old_outcome_has_none():
    outcome = ProviderOutcome(str(uuid.uuid4()), "openai", "gpt-4o", True, 1.0, "timeout", "u1")
    assert ProviderOutcome.from_json(outcome.to_json()) == outcome
    # forwarded by the version before the quorum: no agent field
    old = {k: v for k, v in json.loads(outcome.to_json()).items() if k != "agent"}
    assert ProviderOutcome.from_json(json.dumps(old).encode()).agent is None


def test_the_quorum_is_a_setting_of_the_healer(monkeypatch: pytest.MonkeyPatch):
    assert breaker_config(HealerSettings()).quorum == 2
    monkeypatch.setenv("FINOPS_BREAKER_QUORUM", "1")
    assert breaker_config(HealerSettings()).quorum == 1


def held_back(rule: str) -> float:
    value = REGISTRY.get_sample_value("finops_healer_breaker_trips_held_back_total", {"rule": rule})
    assert value is not None  # at 0 from the start
    return value


def test_one_key_writing_for_many_agent_ids_is_one_reporter(caplog: Any):
    """A key with events:write:any names any agent id; the principal on its events is its
    own: its faults among another key's calls are held back, counted, and logged once."""
    intake = forwarder()
    shard = BreakerShard(BreakerBoard(BreakerConfig(min_calls=4)), IdDedupe(1024))
    before = held_back("failure_rate")
    records = [(AGENT_COST.name, success("honest", principal="user-honest"))]
    records += [
        (AGENT_ERROR.name, overloaded(f"made-up-{i}", principal="user-admin")) for i in range(6)
    ]
    with caplog.at_level(logging.WARNING, logger="finops.healer.adapters.circuits"):
        for topic, value in records:
            outcome = intake.outcome(topic, value)
            assert outcome is not None
            shard.count(outcome)
    assert shard.transitions == []  # not opened
    assert held_back("failure_rate") - before == 4  # the 3rd to the 6th fault would have
    logged = [r for r in caplog.records if "the case does not hold" in r.getMessage()]
    assert len(logged) == 1
    said = logged[0].__dict__
    assert (said["left_out_agents"], said["left_out_faults"], said["faults"]) == (1, 3, 3)
    assert (said["calling_agents"], said["quorum"]) == (2, 2)
    # a second key's fault: without the first key's faults, 1 of 2 calls, under min_calls
    for i in range(4):
        second = intake.outcome(AGENT_ERROR.name, overloaded("x", principal="user-2"))
        assert second is not None
        shard.count(second)
        if i == 0:
            assert shard.transitions == []
            assert held_back("failure_rate") - before == 5
    # its 4th: without the first key's, 4 of 5 calls failed
    assert [t.after.value for t in shard.transitions] == ["open"]
