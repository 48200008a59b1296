"""A breaker board saved and restored goes on exactly as one that never stopped."""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import dataclass
from typing import Any

import pytest

from finops.common.id_dedupe import IdDedupe
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.adapters.breaker_shards import BreakerShard
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breaker_state import board_from_state, board_to_state
from finops.healer.domain.breaker_trips import HeldBack
from finops.healer.domain.breaker_window import AgentCounts, Counts
from finops.healer.domain.breakers import Breaker, BreakerConfig, Transition

CONFIG = BreakerConfig(min_calls=10, cooldown_s=5.0, window_s=30.0)
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku"), ("openai", "gpt-4o-mini")]


def feed(board: BreakerBoard, calls: list[tuple[str, str, bool, float]]) -> list[Transition]:
    moved = []
    for provider, model, failed, at in calls:
        if failed:
            transition = board.failure(provider, model, ErrorKind.OVERLOADED, at=at)
        else:
            transition = board.success(provider, model, at=at)
        if transition is not None:
            moved.append(transition)
        moved += board.tick(at)
    return moved


def calls_with_outages(seed: int) -> list[tuple[str, str, bool, float]]:
    """Calls to three models over 200 s, each failing in bursts (so breakers open, probe,
    reopen and close), a few calls a second."""
    rng = random.Random(seed)
    out = []
    at = 1_000.0
    for step in range(1_500):
        at += rng.expovariate(8.0)
        provider, model = rng.choice(MODELS)
        outage = (step // 150) % 3 == MODELS.index((provider, model))
        out.append((provider, model, rng.random() < (0.8 if outage else 0.05), at))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_board_restored_midway_makes_the_same_transitions_as_one_that_ran_through(seed):
    calls = calls_with_outages(seed)
    through = BreakerBoard(CONFIG)
    expected = feed(through, calls)
    assert {t.after.value for t in expected} == {"open", "half_open", "closed"}  # all exercised

    for cut in (137, 600, 1_111):
        first = BreakerBoard(CONFIG)
        moved = feed(first, calls[:cut])
        # through JSON, as a checkpoint row holds it
        saved = json.loads(json.dumps(board_to_state(first)))
        moved += feed(board_from_state(saved, CONFIG), calls[cut:])
        assert moved == expected, f"seed {seed}, cut at call {cut}"


def test_a_detector_saved_by_another_river_version_starts_afresh():
    board = BreakerBoard(CONFIG)
    feed(board, calls_with_outages(0)[:200])
    saved = board_to_state(board)
    for breaker in saved["breakers"]:
        breaker["detector"]["river"] = "0.0.0"
    restored = board_from_state(saved, CONFIG)
    fresh = pickle.dumps(Breaker("p", "m", CONFIG).detector)
    for key, breaker in restored.breakers.items():
        assert pickle.dumps(board.breakers[key].detector) != fresh  # it had learned
        assert pickle.dumps(breaker.detector) == fresh  # a new detector, warming up again
        assert breaker.window.calls == board.breakers[key].window.calls  # counts kept


def test_a_shard_counts_an_outcome_of_an_unknown_kind_nowhere() -> None:
    shard = BreakerShard(BreakerBoard(CONFIG), IdDedupe(1024))
    event_id = "5b0e3b8e-2c1a-4f6e-9d7a-0b1c2d3e4f50"
    bad = ProviderOutcome(event_id, "openai", "gpt-4o", failed=True, at=0.0, kind="no-such-kind")
    with pytest.raises(ValueError):
        shard.count(bad)
    assert (shard.applied, len(shard.seen)) == (0, 0)
    good = ProviderOutcome(event_id, "openai", "gpt-4o", failed=True, at=0.0, kind="rate_limit")
    shard.count(good)  # the same id, now readable: counted, not taken for a duplicate
    assert (shard.applied, len(shard.seen)) == (1, 1)


@dataclass(frozen=True)
class AgentCall:
    """One call to a model, by ``agent``: ``failed`` a provider fault."""

    model: str
    agent: str
    failed: bool
    at: float


def calls_of_agents(seed: int) -> list[AgentCall]:
    """Calls of four agents to two models over about 190 s: each model has outages every
    agent sees, and spells where only agent-0 reports faults (the others succeed), so that
    breakers open, hold trips back (no case without agent-0's faults), probe, re-open and
    close."""
    rng = random.Random(seed)
    models = ["gpt-4o", "gpt-4o-mini"]
    out = []
    at = 1_000.0
    for step in range(1_500):
        at += rng.expovariate(8.0)
        model = rng.choice(models)
        phase = (step // 150 + 2 * models.index(model)) % 4
        if phase == 2:  # agent-0's own trouble: most of the calls are its, and fail
            agent = "agent-0" if rng.random() < 0.7 else f"agent-{rng.randrange(1, 4)}"
            failed = agent == "agent-0" and rng.random() < 0.95
        else:  # an outage everyone sees (phase 0), or a quiet spell
            agent = f"agent-{rng.randrange(4)}"
            failed = phase == 0 and rng.random() < 0.8
        out.append(AgentCall(model, agent, failed, at))
    return out


def feed_agents(
    board: BreakerBoard, calls: list[AgentCall]
) -> tuple[list[Transition], list[HeldBack]]:
    moved, held = [], []
    for call in calls:
        if call.failed:
            transition = board.failure(
                "openai", call.model, ErrorKind.TIMEOUT, at=call.at, agent=call.agent
            )
        else:
            transition = board.success("openai", call.model, at=call.at, agent=call.agent)
        if transition is not None:
            moved.append(transition)
        if board.held_back is not None:
            held.append(board.held_back)
        moved += board.tick(call.at)
    return moved, held


@pytest.mark.parametrize("seed", [0, 1])
def test_a_board_restored_midway_keeps_the_agents_of_its_quorum(seed):
    calls = calls_of_agents(seed)
    expected = feed_agents(BreakerBoard(CONFIG), calls)
    moved, held = expected
    assert {t.after.value for t in moved} == {"open", "half_open", "closed"}
    assert {h.rule.value for h in held} >= {"failure_rate", "probe"}  # the quorum mattered

    for cut in (211, 640, 1_205):
        first = BreakerBoard(CONFIG)
        before = feed_agents(first, calls[:cut])
        saved = json.loads(json.dumps(board_to_state(first)))
        restored = board_from_state(saved, CONFIG)
        for key, breaker in first.breakers.items():
            again = restored.breakers[key]
            assert [b.agents for b in again.window.buckets] == [
                b.agents for b in breaker.window.buckets
            ]
            assert again.probe_agents == breaker.probe_agents
        after = feed_agents(restored, calls[cut:])
        assert (before[0] + after[0], before[1] + after[1]) == expected, f"cut at {cut}"


def test_a_checkpoint_keeps_the_buckets_the_versions_before_read():
    board = BreakerBoard(CONFIG)
    board.success("openai", "gpt-4o", at=10.0, agent="bot1")
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=11.0, agent="bot2")
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=11.5, agent="bot2")
    board.success("openai", "gpt-4o", at=11.7)  # forwarded without an agent
    (saved,) = board_to_state(board)["breakers"]
    assert saved["buckets"] == [[10, 1, 0], [11, 3, 2]]  # what those versions unpack
    assert saved["bucket_counts"] == [
        {"second": 10, "agents": [["bot1", 1, 0]]},
        {"second": 11, "agents": [["bot2", 2, 2], [None, 1, 0]]},
    ]
    assert "bucket_agents" not in saved  # the first quorum's: restored as unknown agents


def checkpoint_of_an_earlier_version(first_quorum: bool) -> dict[str, Any]:
    """A board that counted 8 faults at 100..107 s, 4 of them a's, saved as the version
    before the quorum wrote it (no agents) or the first version of the quorum (up to
    ``quorum`` ids of the callers and faulters of each second, and of the probes' faulters)."""
    board = BreakerBoard(CONFIG)
    for t in range(8):
        agent = "a" if t % 2 else "b"
        board.failure("openai", "gpt-4o", ErrorKind.OVERLOADED, at=100.0 + t, agent=agent)
    state = board_to_state(board)
    for saved in state["breakers"]:
        del saved["bucket_counts"], saved["probe_agents"]
        if first_quorum:
            saved["bucket_agents"] = [
                {"second": second, "callers": ["a" if second % 2 else "b"], "faulters": []}
                for second, _, _ in saved["buckets"]
            ]
            saved["probe_faulters"] = ["a"]
        else:
            del saved["holding_back"]
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("first_quorum", [False, True])
def test_a_checkpoint_of_an_earlier_version_loads_as_the_unknown_agents_counts(first_quorum):
    """Its buckets' calls and faults are the unknown agent's (the first quorum's ids say not
    who made how many faults). Beside a known agent they are left out: the 8 old faults,
    whoever sent them, do not help one agent open the breaker, and an outage of two agents
    known since opens it on their own counts."""
    board = board_from_state(checkpoint_of_an_earlier_version(first_quorum), CONFIG)
    breaker = board.breakers[("openai", "gpt-4o")]
    assert (breaker.window.calls, breaker.window.failures) == (8, 8)
    assert [b.agents for b in breaker.window.buckets] == [{None: AgentCounts(1, 1)}] * 8
    assert breaker.probe_agents == ({"a": AgentCounts(1, 1)} if first_quorum else {})
    board.success("openai", "gpt-4o", at=108.0, agent="honest")
    board.success("openai", "gpt-4o", at=108.5, agent="honest")
    for t in range(12):  # without liar's faults: the old 8 of 10 calls, were they counted
        fault = board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=109.0 + t, agent="liar")
        assert fault is None
    assert board.held_back is not None and board.held_back.split.unknown_left_out
    assert board.held_back.split.kept == Counts(calls=2, failures=0)
    moved = [
        board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=121.0 + t / 10, agent="other")
        for t in range(10)
    ]
    # without liar's and the unknown agent's: other's 8 faults of 10 calls, min_calls 10
    assert moved[:7] == [None] * 7
    assert moved[7] is not None and moved[7].after.value == "open"


def test_a_checkpoint_of_the_version_before_the_quorum_opens_on_the_counts_alone():
    """With no agent known since, nothing is left out: the rule before the quorum."""
    board = board_from_state(checkpoint_of_an_earlier_version(first_quorum=False), CONFIG)
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=108.0)
    opened = board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=109.0)
    assert opened is not None and opened.after.value == "open"
    assert opened.state.reason == "failure rate 100% over 10 calls in 30 s (threshold 50%)"


def test_a_half_open_breaker_restored_remembers_whose_probes_failed():
    board = BreakerBoard(BreakerConfig(min_calls=2, cooldown_s=5.0))
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=0.0, agent="a")
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=0.5, agent="b")
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=0.7, agent="b")
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=0.9, agent="a")
    board.tick(now=6.0)
    assert board.breakers[("openai", "gpt-4o")].status.value == "half_open"
    assert board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=6.5, agent="a") is None
    restored = board_from_state(json.loads(json.dumps(board_to_state(board))), CONFIG)
    assert restored.breakers[("openai", "gpt-4o")].probe_agents == {"a": AgentCounts(1, 1)}
    # b's probe fails too: without a's, b's is left
    reopened = restored.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=7.0, agent="b")
    assert reopened is not None and reopened.after.value == "open"
