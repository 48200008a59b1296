"""A breaker opens only on a case that still holds without the faults of the agents that
reported the most (domain): one agent's faults, however many, cannot open it for the others,
while an outage several agents see still does."""

from __future__ import annotations

import random

import pytest

from finops.common.circuits import CircuitStatus
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breaker_trips import TripRule
from finops.healer.domain.breaker_window import AGENTS_KEPT, Counts, SlidingWindow
from finops.healer.domain.breakers import Breaker, BreakerConfig

OPEN, HALF_OPEN, CLOSED = CircuitStatus.OPEN, CircuitStatus.HALF_OPEN, CircuitStatus.CLOSED
CONFIG = BreakerConfig(min_calls=20, failure_threshold=0.5, cooldown_s=30.0, probes_to_close=3)


def record_all(breaker: Breaker, calls: list[tuple[str | None, bool]], start: float) -> set:
    """Record ``(agent, failed)`` calls 0.05 s apart from ``start``; the rules of the trips
    held back on the way."""
    held = set()
    for i, (agent, failed) in enumerate(calls):
        breaker.record(failed, at=start + i * 0.05, agent=agent)
        if breaker.held_back is not None:
            held.add(breaker.held_back.rule)
    return held


def attack(honest_agents: int) -> list[tuple[str | None, bool]]:
    """One agent's 60 made-up faults among one success of each of ``honest_agents`` agents
    and a single real fault of one more honest agent, interleaved, within a few seconds."""
    rng = random.Random(3)
    calls: list[tuple[str | None, bool]] = [(f"honest-{i}", False) for i in range(honest_agents)]
    calls += [("liar", True)] * 60 + [("unlucky", True)]
    rng.shuffle(calls)
    return calls


@pytest.mark.parametrize(
    ("honest_agents", "rule"),
    [(20, TripRule.FAILURE_RATE), (200, TripRule.DETECTOR)],
)
def test_one_agents_60_faults_and_one_real_fault_do_not_open_it(honest_agents, rule):
    """With 20 honest agents the window's rate (61 of 81) trips; with 200 (61 of 261, 23 %)
    only DDM does. Either way, without the liar's calls and faults one fault is left."""
    calls = attack(honest_agents)
    old_rule = Breaker("openai", "gpt-4o", BreakerConfig(quorum=1))
    record_all(old_rule, calls, start=100.0)
    assert old_rule.status is OPEN  # so the calls do make a case
    breaker = Breaker("openai", "gpt-4o", BreakerConfig())
    held = record_all(breaker, calls, start=100.0)
    assert breaker.status is CLOSED and breaker.reason == "never opened"
    assert (breaker.window.calls, breaker.window.failures) == (honest_agents + 61, 61)
    assert rule in held
    last = breaker.held_back
    assert last is not None and last.split.left_out == 1
    assert last.split.kept.failures <= 1  # the unlucky agent's, when in the span


def test_the_board_says_what_the_last_outcome_held_back():
    board = BreakerBoard(BreakerConfig(min_calls=2))
    board.success("openai", "gpt-4o", at=0.0, agent="honest")
    assert board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=1.0, agent="liar") is None
    held = board.held_back
    assert held is not None and held.model == "gpt-4o"
    assert held.split.kept == Counts(calls=1, failures=0)
    assert held.message == (
        "openai/gpt-4o: not opened (failure_rate): 1 of its 1 faults come from the 1 agent(s)"
        " that reported the most, of 2 calling; without them 0 of 1 calls failed;"
        " FINOPS_BREAKER_QUORUM is 2"
    )
    board.failure("openai", "gpt-4o", ErrorKind.AUTH, at=2.0, agent="liar")  # not counted
    assert board.held_back is None


def test_a_run_of_held_back_trips_is_first_reported_once():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    record_all(breaker, [("honest", False)] * 20, start=0.0)
    firsts = []
    for i in range(30):
        breaker.record(True, at=2.0 + i * 0.05, agent="liar")
        if breaker.held_back is not None:
            firsts.append(breaker.held_back.first)
    assert firsts[0] is True and not any(firsts[1:])
    assert len(firsts) == 11  # from the 20th fault on (50 % of 40 calls), each one


@pytest.mark.parametrize(("agents", "opened_at_call"), [(3, 30), (2, 40)])
def test_an_outage_every_agent_sees_opens_it(agents, opened_at_call):
    """Each agent's calls all fail: without the top faulter's, 20 calls of the others are
    all faults (3 agents: at the 30th call; 2 agents: at the 40th, each with 20)."""
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    moved = []
    for i in range(60):
        moved.append(breaker.record(True, at=i * 0.05, agent=f"agent-{i % agents}"))
        if breaker.status is OPEN:
            break
    assert len(moved) == opened_at_call
    opened = moved[-1]
    assert opened is not None and opened.after is OPEN
    assert opened.state.reason == (
        f"failure rate 100% over {opened_at_call} calls in 60 s (threshold 50%);"
        " faults from 2+ agents"
    )


def test_the_only_caller_opens_it_on_its_own_faults():
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    moved = [breaker.record(True, at=i * 0.05, agent="only") for i in range(20)]
    assert moved[:19] == [None] * 19
    assert moved[19] is not None and moved[19].after is OPEN
    assert moved[19].state.reason.endswith("(threshold 50%); faults from its only caller")


def test_with_fewer_callers_than_the_quorum_all_but_one_are_left_out():
    """Quorum 3, two callers: the lesser faulter's case must hold on its own, so one of two
    agents cannot open it either."""
    config = BreakerConfig(min_calls=20, quorum=3)
    alone = Breaker("openai", "gpt-4o", config)
    held = record_all(alone, [("honest", False)] * 20 + [("liar", True)] * 40, start=0.0)
    assert alone.status is CLOSED and held == {TripRule.FAILURE_RATE}
    both = Breaker("openai", "gpt-4o", config)
    record_all(both, [(f"agent-{i % 2}", True) for i in range(40)], start=0.0)
    assert both.status is OPEN
    assert both.reason.endswith("; faults from all 2 agents that called")


def test_quorum_one_is_the_rule_before_it():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(quorum=1))
    record_all(breaker, [("honest", False)] * 20, start=0.0)
    moved = [breaker.record(True, at=2.0 + i * 0.05, agent="liar") for i in range(20)]
    assert moved[:19] == [None] * 19  # the 20th fault makes 50 % of 40 calls
    assert moved[19] is not None and moved[19].after is OPEN
    assert moved[19].state.reason == "failure rate 50% over 40 calls in 60 s (threshold 50%)"
    assert breaker.held_back is None


def test_outcomes_of_unknown_agents_open_it_on_the_counts():
    """Outcomes without an agent (forwarded by the version before the quorum) are one agent,
    the unknown one: alone, nothing is left out and the breaker opens as before."""
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    record_all(breaker, [(None, False)] * 20, start=0.0)
    moved = [breaker.record(True, at=2.0 + i * 0.05) for i in range(20)]
    assert moved[19] is not None and moved[19].after is OPEN
    assert moved[19].state.reason.endswith("(threshold 50%)")  # no agent to name


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


def test_the_detector_needs_a_case_without_the_top_faulter_too():
    both, _ = rising_errors(["a", "b"], quorum=2)
    assert both.status is OPEN and both.reason.startswith("error rate rose (DDM detector;")
    assert both.reason.endswith("; faults from 2+ agents")
    assert rising_errors(["a"], quorum=1)[0].status is OPEN  # the same faults, quorum 1
    alone, held = rising_errors(["a"], quorum=2)
    assert alone.status is CLOSED
    assert alone.window.failure_rate < 0.5  # the failure rate's rule never applied
    assert held == {TripRule.DETECTOR}


def half_open(agents: list[str]) -> Breaker:
    """A breaker opened at ~1 s by an outage of ``agents`` (all their calls failed), now
    half-open."""
    breaker = Breaker("openai", "gpt-4o", CONFIG)
    for i in range(60):
        breaker.record(True, at=1.0 + i * 0.01, agent=agents[i % len(agents)])
        if breaker.status is OPEN:
            break
    assert breaker.status is OPEN
    assert breaker.tick(now=32.0).after is HALF_OPEN
    return breaker


def test_one_agents_probe_faults_among_honest_probes_leave_it_probing():
    breaker = half_open(["a", "b"])
    assert breaker.record(False, at=33.0, agent="a") is None
    for i in range(60):
        assert breaker.record(True, at=33.1 + i * 0.01, agent="b") is None  # b's own trouble
    assert breaker.status is HALF_OPEN
    assert breaker.held_back is not None and breaker.held_back.rule is TripRule.PROBE
    assert breaker.held_back.split.kept == Counts(calls=1, failures=0)  # a's probe
    assert breaker.record(False, at=35.0, agent="a") is None
    closed = breaker.record(False, at=36.0, agent="c")  # the third successful probe
    assert closed is not None and closed.after is CLOSED


def test_anothers_probe_fault_reopens_it_whatever_the_top_faulter_sent():
    """Without b's 60 probe faults, c's one probe failed: that alone re-opens a half-open
    breaker, with or without b's."""
    breaker = half_open(["a", "b", "c"])
    for i in range(60):
        assert breaker.record(True, at=33.0 + i * 0.01, agent="b") is None
    reopened = breaker.record(True, at=34.0, agent="c")
    assert reopened is not None and (reopened.before, reopened.after) == (HALF_OPEN, OPEN)
    assert reopened.state.next_probe_at == 34.0 + 60.0
    assert reopened.state.reason == "a probe failed; faults from 2+ agents"


def test_the_only_callers_probe_fault_reopens_it():
    breaker = half_open(["a"])
    reopened = breaker.record(True, at=33.0, agent="a")
    assert reopened is not None and reopened.after is OPEN
    assert reopened.state.reason == "a probe failed; faults from its only caller"


def test_quorum_one_reopens_on_any_probe_fault():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(quorum=1))
    record_all(breaker, [("a", True), ("b", True)] * 10, start=1.0)
    assert breaker.tick(now=32.0).after is HALF_OPEN
    reopened = breaker.record(True, at=33.0, agent="b")
    assert reopened is not None and reopened.state.reason == "a probe failed"


def test_the_probes_counts_start_afresh_at_each_half_opening():
    breaker = half_open(["a", "b"])
    breaker.record(True, at=33.0, agent="a")  # held back: one agent's
    breaker.record(True, at=33.5, agent="b")  # reopened: without a's, b's fault is left
    assert breaker.status is OPEN
    assert breaker.tick(now=94.0).after is HALF_OPEN
    assert breaker.record(False, at=94.2, agent="a") is None
    # a's fault of the last probing is forgotten: b's alone is left out, leaving it probing
    assert breaker.record(True, at=94.5, agent="b") is None
    assert breaker.status is HALF_OPEN


@pytest.mark.parametrize(("quorum", "kept"), [(1, AGENTS_KEPT), (2, AGENTS_KEPT), (12, 13)])
def test_a_bucket_keeps_the_counts_of_a_bounded_number_of_agents_of_a_thousand(quorum, kept):
    window = SlidingWindow(60.0, agents_kept=BreakerConfig(quorum=quorum).agents_kept)
    window.add(100.1, failed=True, agent="liar")
    for i in range(1_000):
        window.add(100.5, failed=False, agent=f"agent-{i}")
        window.add(100.5, failed=True, agent="liar")  # the top faulter is never dropped
    (bucket,) = window.buckets
    assert (bucket.calls, bucket.failures) == (2_001, 1_001)
    assert len(bucket.agents) == kept
    assert (bucket.agents["liar"].calls, bucket.agents["liar"].faults) == (1_001, 1_001)
    split = window.split(None, quorum=2)
    assert split.kept == Counts(calls=1_000, failures=0)


def test_the_window_sums_each_agents_counts_over_the_span():
    window = SlidingWindow(10.0)
    window.add(100.0, failed=True, agent="a")
    window.add(101.0, failed=False, agent="a")
    window.add(105.0, failed=True, agent="b")
    # a and b faulted once each: a, with more calls, is left out
    assert window.split(None, quorum=2).kept == Counts(calls=1, failures=1)
    recent = window.split(3.0, quorum=2)  # 103..105: b alone
    assert (recent.callers, recent.left_out, recent.kept) == (1, 0, Counts(1, 1))
    window.add(111.0, failed=False, agent="c")  # 100 and 101 leave the window
    assert set(window.agents()) == {"b", "c"}


def test_the_windows_running_totals_are_its_buckets_summed():
    """Kept as outcomes come, agents are dropped from full seconds and seconds leave."""
    rng = random.Random(11)
    window = SlidingWindow(10.0, agents_kept=3)
    at = 0.0
    for _ in range(5_000):
        at += rng.expovariate(20.0)
        window.add(at, failed=rng.random() < 0.3, agent=rng.choice(["a", "b", "c", "d", None]))
        assert window.agents() == window.agents(seconds=11.0)  # summed afresh
    assert sum(c.calls for c in window.agents().values()) < window.calls  # some dropped
