"""Circuit breakers per provider/model (domain): open, probe, close, and what counts."""

from __future__ import annotations

import random

import pytest

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breakers import Breaker, BreakerConfig

OPEN, HALF_OPEN, CLOSED = CircuitStatus.OPEN, CircuitStatus.HALF_OPEN, CircuitStatus.CLOSED


def test_a_closed_breaker_with_failures_does_not_say_none_were_seen():
    """A breaker that never opened keeps its first reason while it counts failures: the
    reason must stay true then (GET /api/healing/circuits showed 8 failures of 58 calls with
    "no failures seen")."""
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=20, failure_threshold=0.5))
    for t in range(5):
        assert breaker.record(t % 2 == 0, at=float(t)) is None
    state = breaker.snapshot()
    assert (state.state, state.failures) == (CLOSED, 3)
    assert state.reason == "never opened"


def test_the_failure_rate_opens_only_with_the_minimum_number_of_calls():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=10, failure_threshold=0.5))
    # 9 calls, all failed: below the minimum, stays closed
    assert [breaker.record(True, at=float(t)) for t in range(9)] == [None] * 9
    assert breaker.status is CLOSED
    transition = breaker.record(True, at=9.0)
    assert transition is not None and transition.after is OPEN
    assert transition.state.calls == 10 and transition.state.failures == 10
    assert transition.state.opened_at == 9.0
    assert transition.state.next_probe_at == 9.0 + 30.0
    assert "failure rate 100%" in transition.state.reason


def test_a_failure_rate_under_the_threshold_keeps_it_closed():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=10, failure_threshold=0.5))
    for t in range(100):
        assert breaker.record(t % 3 == 0, at=t * 0.1) is None  # a third fail
    assert breaker.status is CLOSED
    assert breaker.snapshot().failure_rate == pytest.approx(34 / 100, abs=0.01)


def test_the_window_forgets_old_failures():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(window_s=10, min_calls=10))
    for t in range(8):
        breaker.record(True, at=float(t))
    for t in range(20, 30):  # the 8 failures are out of the window by now
        assert breaker.record(False, at=float(t)) is None
    assert breaker.window.failures == 0 and breaker.window.calls == 10
    for t in range(30, 34):
        assert breaker.record(True, at=float(t)) is None  # 4 of the last 10 < 50 %
    assert breaker.status is CLOSED


def test_the_detector_opens_before_the_threshold_after_a_healthy_period():
    """A healthy provider whose errors jump from ~2 % to ~45 %: never 50 %, DDM still fires."""
    config = BreakerConfig(window_s=60, min_calls=20, failure_threshold=0.5)
    breaker = Breaker("anthropic", "claude-3-5-sonnet", config)
    rng = random.Random(7)
    at = 0.0
    for _ in range(400):
        at += 0.1
        assert breaker.record(rng.random() < 0.02, at=at) is None
    opened, steps = None, 0
    while opened is None and steps < 200:
        steps += 1
        at += 0.1
        opened = breaker.record(rng.random() < 0.45, at=at)
    assert opened is not None and opened.after is OPEN, "the detector never fired"
    assert "DDM" in opened.state.reason
    assert opened.state.failure_rate < 0.5
    assert steps < 100


def test_probes_close_it_and_a_failed_probe_reopens_it_with_a_longer_cool_down():
    config = BreakerConfig(min_calls=4, cooldown_s=30, probes_to_close=2)
    breaker = Breaker("openai", "gpt-4o", config)
    for t in range(4):
        breaker.record(True, at=float(t))
    assert breaker.status is OPEN
    assert breaker.tick(now=20.0) is None  # still cooling down
    assert breaker.record(False, at=20.0) is None  # a call let through early changes nothing
    assert breaker.status is OPEN
    assert breaker.tick(now=33.0).after is HALF_OPEN
    reopened = breaker.record(True, at=34.0)
    assert reopened.before is HALF_OPEN and reopened.after is OPEN
    assert reopened.state.next_probe_at == 34.0 + 60.0  # doubled
    assert breaker.tick(now=94.0).after is HALF_OPEN
    assert breaker.record(False, at=95.0) is None
    closed = breaker.record(False, at=96.0)
    assert closed.before is HALF_OPEN and closed.after is CLOSED
    assert closed.state.opened_at is None and closed.state.next_probe_at is None
    assert closed.state.calls == 0  # a fresh window after recovery
    # and the cool-down is back to its start value the next time
    for t in range(100, 104):
        breaker.record(True, at=float(t))
    assert breaker.snapshot().next_probe_at == 103.0 + 30.0


def test_an_outcome_after_the_cool_down_probes_without_a_tick():
    breaker = Breaker("openai", "gpt-4o", BreakerConfig(min_calls=2, probes_to_close=1))
    breaker.record(True, at=0.0)
    breaker.record(True, at=1.0)
    transition = breaker.record(False, at=40.0)
    assert transition.before is HALF_OPEN and transition.after is CLOSED


def test_the_cool_down_never_exceeds_its_maximum():
    config = BreakerConfig(min_calls=1, cooldown_s=100, max_cooldown_s=150)
    breaker = Breaker("openai", "gpt-4o", config)
    breaker.record(True, at=0.0)
    breaker.tick(now=100.0)
    reopened = breaker.record(True, at=100.0)
    assert reopened.state.next_probe_at == 100.0 + 150.0


@pytest.mark.parametrize(
    ("kind", "counts"),
    [
        (ErrorKind.RATE_LIMIT, True),
        (ErrorKind.OVERLOADED, True),
        (ErrorKind.SERVER_ERROR, True),
        (ErrorKind.TIMEOUT, True),
        (ErrorKind.NETWORK, True),
        (ErrorKind.BAD_REQUEST, False),
        (ErrorKind.AUTH, False),
        (ErrorKind.QUOTA_EXHAUSTED, False),
        (ErrorKind.CONTEXT_LENGTH_EXCEEDED, False),
        (ErrorKind.CONTENT_POLICY, False),
        (ErrorKind.MODEL_NOT_FOUND, False),
        (ErrorKind.INVALID_OUTPUT, False),
        (ErrorKind.UNKNOWN, False),
    ],
)
def test_only_provider_faults_count(kind, counts):
    board = BreakerBoard(BreakerConfig(min_calls=3))
    for t in range(5):
        board.failure("openai", "gpt-4o", kind, at=float(t))
    breaker = board.breakers.get(("openai", "gpt-4o"))
    if counts:
        assert breaker is not None and breaker.status is OPEN
    else:
        assert breaker is None  # never even counted as a call


def test_breakers_are_per_provider_and_model():
    board = BreakerBoard(BreakerConfig(min_calls=3))
    for t in range(3):
        board.failure("openai", "gpt-4o", ErrorKind.SERVER_ERROR, at=float(t))
        board.success("openai", "gpt-4o-mini", at=float(t))
        board.success("azure", "gpt-4o", at=float(t))
    states = {(s.provider, s.model): s.state for s in board.drain_changed()}
    assert states == {
        ("openai", "gpt-4o"): OPEN,
        ("openai", "gpt-4o-mini"): CLOSED,
        ("azure", "gpt-4o"): CLOSED,
    }
    assert board.drain_changed() == []


def test_a_new_owner_adopts_the_published_state():
    published = CircuitState(
        "openai", "gpt-4o", OPEN, 0.8, 20, 16, 60.0, 100.0, 130.0, "failure rate", 100.0
    )
    board = BreakerBoard(BreakerConfig(), published=lambda p, m: published)
    assert board.success("openai", "gpt-4o", at=110.0) is None  # still cooling down
    assert board.breaker("openai", "gpt-4o").status is OPEN
    moved = board.tick(now=131.0)
    assert [t.after for t in moved] == [HALF_OPEN]


@pytest.mark.parametrize("seed", range(5))
def test_a_steady_five_percent_error_rate_never_opens_it(seed):
    breaker = Breaker("openai", "gpt-4o", BreakerConfig())
    rng = random.Random(seed)
    opened = [breaker.record(rng.random() < 0.05, at=i * 0.05) for i in range(5000)]
    assert [t for t in opened if t is not None] == []


def test_a_breaker_handed_to_another_owner_is_forgotten_and_never_published_here():
    board = BreakerBoard(BreakerConfig(min_calls=2))
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=0.0)
    board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=1.0)
    board.success("openai", "gpt-4o-mini", at=1.0)
    board.forget(("openai", "gpt-4o"))
    assert [(s.model, s.state) for s in board.drain_changed()] == [("gpt-4o-mini", CLOSED)]
    assert board.tick(now=1000.0) == []  # its cool-down ends elsewhere


def test_a_new_owner_carries_on_from_the_published_counts():
    published = CircuitState("openai", "gpt-4o", CLOSED, 0.5, 8, 4, 60.0, None, None, "", 100.0)
    board = BreakerBoard(BreakerConfig(min_calls=10), published=lambda p, m: published)
    assert board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=101.0) is None  # 5 of 9
    opened = board.failure("openai", "gpt-4o", ErrorKind.TIMEOUT, at=102.0)
    assert opened is not None and opened.after is OPEN
    assert (opened.state.calls, opened.state.failures) == (10, 6)
