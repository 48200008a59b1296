"""A breaker opens on faults from a quorum of agents, or from every agent that called when
fewer did (domain): one agent among several cannot open it for the others."""

from __future__ import annotations

import random

import pytest

from finops.common.circuits import CircuitStatus
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.breaker_trips import TripRule
from finops.healer.domain.breaker_window import Reporters, SlidingWindow
from finops.healer.domain.breakers import Breaker, BreakerBoard, BreakerConfig

OPEN, HALF_OPEN, CLOSED = CircuitStatus.OPEN, CircuitStatus.HALF_OPEN, CircuitStatus.CLOSED
#: min_calls 10: a window of 20 calls, 10 successes of "honest" then 10 faults, trips the rate
CONFIG = BreakerConfig(min_calls=10, failure_threshold=0.5, cooldown_s=30.0, probes_to_close=3)


def healthy_calls(breaker: Breaker, agent: str | None, n: int, start: float) -> None:
    for i in range(n):
        assert breaker.record(False, at=start + i * 0.1, agent=agent) is None


def test_one_agents_faults_among_two_callers_do_not_open_it():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    healthy_calls(breaker, "honest", 10, start=0.0)
    moved = [breaker.record(True, at=2.0 + i * 0.1, agent="liar") for i in range(60)]
    assert moved == [None] * 60
    assert breaker.status is CLOSED
    assert breaker.window.failures == 60  # counted all the same: the rate is 60 of 70
    held = breaker.held_back
    assert held is not None and held.rule is TripRule.FAILURE_RATE
    assert (held.reporters, held.quorum) == (Reporters(callers=2, faulters=1), 2)
    assert breaker.snapshot().reason == "never opened"


def test_a_run_of_held_back_trips_is_first_reported_once():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    healthy_calls(breaker, "honest", 10, start=0.0)
    firsts = []
    for i in range(20):
        breaker.record(True, at=2.0 + i * 0.1, agent="liar")
        if breaker.held_back is not None:
            firsts.append(breaker.held_back.first)
    assert firsts[0] is True and not any(firsts[1:])
    assert len(firsts) == 11  # from the 10th fault on (rate 50 % of 20 calls), each one


def test_faults_from_two_agents_open_it():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    healthy_calls(breaker, "honest", 10, start=0.0)
    for i in range(10):
        breaker.record(True, at=2.0 + i * 0.1, agent="first")
    assert breaker.status is CLOSED  # one agent's so far
    opened = breaker.record(True, at=3.5, agent="second")
    assert opened is not None and opened.after is OPEN
    assert opened.state.reason.startswith("failure rate")
    assert opened.state.reason.endswith("; faults from 2+ agents")
    assert breaker.held_back is None


def test_a_sole_caller_opens_it_on_its_own_faults():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    moved = [breaker.record(True, at=i * 0.1, agent="only") for i in range(10)]
    assert moved[:9] == [None] * 9
    assert moved[9] is not None and moved[9].after is OPEN
    assert moved[9].state.reason.endswith("; faults from its only caller")


def test_quorum_one_is_the_rule_before_it():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=10, quorum=1))
    healthy_calls(breaker, "honest", 10, start=0.0)
    moved = [breaker.record(True, at=2.0 + i * 0.1, agent="liar") for i in range(10)]
    assert moved[:9] == [None] * 9  # the 10th fault makes 50 % of 20 calls
    assert moved[9] is not None and moved[9].after is OPEN
    assert moved[9].state.reason == "failure rate 50% over 20 calls in 60 s (threshold 50%)"


def test_outcomes_of_unknown_agents_open_it_on_the_counts():
    """Outcomes without an agent (forwarded by the version before the quorum) count for no
    one: with no agent known, the breaker opens on the counts alone, as before."""
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    healthy_calls(breaker, None, 10, start=0.0)
    moved = [breaker.record(True, at=2.0 + i * 0.1) for i in range(10)]
    assert moved[9] is not None and moved[9].after is OPEN
    assert moved[9].state.reason.endswith("(threshold 50%)")


def rising_errors(agents_of_faults: list[str], quorum: int) -> tuple[Breaker, set[TripRule]]:
    """A breaker that saw 400 healthy calls of two agents (2 % faults, a's), then errors at
    ~45 % (never the 50 % of the failure rate: only DDM can open it) from
    ``agents_of_faults`` in turn; and the rules of the trips it held back."""
    breaker = Breaker("anthropic", "claude", BreakerConfig(min_calls=20, quorum=quorum))
    rng = random.Random(7)
    held: set[TripRule] = set()
    at = 0.0
    for i in range(400):
        at += 0.1
        failed = rng.random() < 0.02
        breaker.record(failed, at=at, agent="a" if failed else ("a", "b")[i % 2])
    for i in range(200):
        at += 0.1
        if rng.random() < 0.45:
            breaker.record(True, at=at, agent=agents_of_faults[i % len(agents_of_faults)])
        else:
            breaker.record(False, at=at, agent=("a", "b")[i % 2])
        if breaker.held_back is not None:
            held.add(breaker.held_back.rule)
        if breaker.status is OPEN:
            break
    return breaker, held


def test_the_detector_needs_the_recent_faults_of_a_quorum_too():
    both, _ = rising_errors(["a", "b"], quorum=2)
    assert both.status is OPEN and both.reason.startswith("error rate rose (DDM detector;")
    assert rising_errors(["a"], quorum=1)[0].status is OPEN  # the same faults, quorum 1
    alone, held = rising_errors(["a"], quorum=2)
    assert alone.status is CLOSED
    assert alone.window.failure_rate < 0.5  # the failure rate's rule never applied
    assert held == {TripRule.DETECTOR}


def opened_by(agents: list[str]) -> Breaker:
    """A breaker opened at 1.x s by the faults of ``agents`` (10 calls, all failed)."""
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    for i in range(10):
        breaker.record(True, at=1.0 + i * 0.05, agent=agents[i % len(agents)])
    assert breaker.status is OPEN
    assert breaker.tick(now=32.0).after is HALF_OPEN
    return breaker


def test_one_agents_probe_fault_while_anothers_probes_succeed_leaves_it_half_open():
    breaker = opened_by(["a", "b"])
    assert breaker.record(False, at=33.0, agent="a") is None
    assert breaker.record(True, at=33.5, agent="b") is None  # b's own trouble
    assert breaker.status is HALF_OPEN
    assert breaker.held_back is not None and breaker.held_back.rule is TripRule.PROBE
    assert breaker.held_back.reporters == Reporters(callers=2, faulters=1)
    assert breaker.record(True, at=34.0, agent="b") is None  # b again: still one agent
    assert breaker.record(False, at=35.0, agent="a") is None
    closed = breaker.record(False, at=36.0, agent="a")  # the third successful probe
    assert closed is not None and closed.after is CLOSED


def test_probe_faults_from_two_agents_reopen_it_with_a_longer_cool_down():
    breaker = opened_by(["a", "b"])
    assert breaker.record(True, at=33.0, agent="a") is None
    reopened = breaker.record(True, at=33.5, agent="b")
    assert reopened is not None and (reopened.before, reopened.after) == (HALF_OPEN, OPEN)
    assert reopened.state.next_probe_at == 33.5 + 60.0
    assert reopened.state.reason == "a probe failed; faults from 2+ agents"


def test_the_only_callers_probe_fault_reopens_it():
    breaker = opened_by(["a"])
    reopened = breaker.record(True, at=33.0, agent="a")
    assert reopened is not None and reopened.after is OPEN


def test_the_probes_faulters_start_afresh_at_each_half_opening():
    breaker = opened_by(["a", "b"])
    breaker.record(True, at=33.0, agent="a")  # held back: one agent's
    breaker.record(True, at=33.5, agent="b")  # reopened: two agents'
    assert breaker.tick(now=94.0).after is HALF_OPEN
    assert breaker.record(False, at=94.2, agent="a") is None
    # a's fault of the last probing is forgotten: b's alone among a and b leaves it probing
    assert breaker.record(True, at=94.5, agent="b") is None
    assert breaker.status is HALF_OPEN


@pytest.mark.parametrize("quorum", [1, 2, 5])
def test_a_bucket_keeps_at_most_quorum_agents_of_a_thousand(quorum):
    window = SlidingWindow(60.0, agents_kept=quorum)
    for i in range(1_000):
        window.add(100.5, failed=i % 2 == 0, agent=f"agent-{i}")
    (bucket,) = window.buckets
    assert (bucket.calls, bucket.failures) == (1_000, 500)
    assert len(bucket.callers) == quorum and len(bucket.faulters) == quorum
    assert window.reporters() == Reporters(callers=quorum, faulters=quorum)


def test_the_window_counts_agents_over_its_buckets_up_to_the_quorum():
    window = SlidingWindow(10.0, agents_kept=3)
    window.add(100.0, failed=True, agent="a")
    window.add(101.0, failed=False, agent="a")
    window.add(105.0, failed=True, agent="b")
    assert window.reporters() == Reporters(callers=2, faulters=2)
    assert window.reporters(seconds=3.0) == Reporters(callers=1, faulters=1)  # 103..105
    window.add(111.0, failed=False, agent="c")  # 100 and 101 leave the window
    assert window.reporters() == Reporters(callers=2, faulters=1)


def test_the_board_says_what_the_last_outcome_held_back():
    board = BreakerBoard(BreakerConfig(min_calls=2))
    board.success("openai", "gpt-4o", at=0.0, agent="honest")
    assert board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=1.0, agent="liar") is None
    assert board.held_back is not None and board.held_back.model == "gpt-4o"
    assert "faults from 1 agent(s) of 2+ calling" in board.held_back.message
    board.failure("openai", "gpt-4o", ErrorKind.AUTH, at=2.0, agent="liar")  # not counted
    assert board.held_back is None
    opened = board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=3.0, agent="other")
    assert opened is not None and opened.after is OPEN and board.held_back is None
