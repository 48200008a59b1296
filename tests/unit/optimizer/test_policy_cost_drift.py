"""The log-cost residual's detector on sequential ranks (``RankDriftMonitor``).

Page-Hinkley standardised by the first 30 residuals, frozen, took its scale while the cost
model was still learning; a CUSUM on sequential ranks has nothing to estimate: for a
stationary stream the ranks are independent uniforms, however skewed the residuals.
"""

from __future__ import annotations

import json
import math
import random

from finops.optimizer.domain.arms import ArmStats, DriftMonitor, RankDriftMonitor
from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.learning import learn_cost

ARM = "only|p|c"


def _alarms(monitor: RankDriftMonitor, stream: list[float]) -> list[int]:
    return [i for i, x in enumerate(stream) if monitor.update(x)]


def _lognormal_logs(seed: int, n: int, sd: float = 1.0) -> list[float]:
    """The logs of a skewed stream: log of (1 + lognormal), a long right tail."""
    rng = random.Random(seed)
    return [math.log(1.0 + rng.lognormvariate(0.0, sd)) for _ in range(n)]


def test_a_rise_is_found_within_two_hundred_values():
    for seed in range(5):
        rng = random.Random(seed)
        stream = [rng.gauss(0.0, 0.2) + (0.15 if i >= 500 else 0.0) for i in range(1500)]
        found = _alarms(RankDriftMonitor(), stream)
        assert found, seed
        assert 500 <= found[0] < 700, (seed, found)


def test_a_fall_is_found_and_reported_as_one():
    rng = random.Random(7)
    stream = [rng.gauss(0.0, 0.2) - (0.15 if i >= 400 else 0.0) for i in range(1200)]
    monitor = RankDriftMonitor()
    found = _alarms(monitor, stream)
    assert 400 <= found[0] < 600
    assert monitor.last_direction == -1
    assert 0 < monitor.last_run_length <= found[0] + 1 - monitor.settle


def test_a_stationary_skewed_stream_of_ten_thousand_raises_no_alarm():
    for seed in range(5):
        assert _alarms(RankDriftMonitor(), _lognormal_logs(seed, 10_000)) == [], seed


def _cost_stream(seed: int, n: int, output_sd: float = 0.3) -> list[tuple[int, float]]:
    """``(input_tokens, cost)`` of a chat arm priced like gpt-4o: input tokens lognormal,
    output tokens lognormal with log-sd ``output_sd`` (the cost model sees input tokens only)."""
    rng = random.Random(seed)
    calls = []
    for _ in range(n):
        tokens = max(10, round(400 * math.exp(rng.gauss(0, 0.5))))
        out = max(1, round(300 * math.exp(rng.gauss(0, output_sd))))
        calls.append((tokens, tokens * 2.5e-6 + out * 1e-5))
    return calls


def _cost_alarms(ranks: bool, calls: list[tuple[int, float]]) -> int:
    costs, st = CostBook(), ArmStats(cost_ranks=ranks)
    return sum(learn_cost(costs, ARM, st, tokens, cost) is not None for tokens, cost in calls)


def test_heavy_tailed_costs_trip_the_frozen_scale_but_not_the_ranks():
    # what the ranks are for: output tokens with a log-sd of 1, stationary, 10,000 calls
    streams = [_cost_stream(seed, 10_000, output_sd=1.0) for seed in range(10)]
    assert sum(_cost_alarms(False, calls) for calls in streams) >= 2  # 4 in 3 arms of 10
    assert [_cost_alarms(True, calls) for calls in streams] == [0] * 10


def _shrinking_start(seed: int, n: int = 3000) -> list[float]:
    """Residuals of a cost model still learning: high and wide at first, settling within
    about 50 values (a trend the ranks would read as a fall)."""
    rng = random.Random(seed)
    fading = [math.exp(-i / 15) for i in range(n)]
    return [0.4 * f + rng.gauss(0.0, 0.05 + 0.3 * f) for f in fading]


def test_a_shrinking_start_raises_no_alarm():
    for seed in range(5):
        assert _alarms(RankDriftMonitor(), _shrinking_start(seed)) == [], seed


def test_without_settling_the_shrinking_start_reads_as_a_fall():
    # the test above can fail: ranked from the first value, the start is an alarm
    for seed in range(5):
        assert _alarms(RankDriftMonitor(settle=0), _shrinking_start(seed)), seed


def test_a_state_round_trip_midstream_gives_the_same_alarms():
    rng = random.Random(5)
    stream = [rng.gauss(0.0, 0.2) + (0.12 if i >= 900 else 0.0) for i in range(2000)]
    whole = RankDriftMonitor(window=300)
    first = [whole.update(x) for x in stream[:700]]
    restored = RankDriftMonitor.from_state(json.loads(json.dumps(whole.to_state())))
    rest_whole = [whole.update(x) for x in stream[700:]]
    rest_restored = [restored.update(x) for x in stream[700:]]
    assert rest_whole == rest_restored
    assert any(rest_whole) and not any(first)
    assert restored.to_state() == whole.to_state()


def test_the_window_is_bounded_and_kept_sorted():
    monitor = RankDriftMonitor(window=50, settle=5)
    for x in _lognormal_logs(3, 400):
        monitor.update(x)
    state = monitor.to_state()
    assert len(state["win"]) == 50
    assert monitor._sorted == sorted(state["win"])


def test_the_policy_watches_costs_with_ranks_when_asked_and_checkpoints_keep_it():
    policy = RoutingPolicy(PolicyConfig(cost_drift_ranks=True), default_arms=[ARM])
    for tokens, cost in _cost_stream(1, 200):
        policy.update("chat", ARM, {"input_tokens": float(tokens)}, 1.0, cost)
    st = policy._tasks["chat"].arms[ARM]
    assert isinstance(st.cost_drift, RankDriftMonitor)
    restored = RoutingPolicy.from_state(json.loads(json.dumps(policy.to_state())))
    again = restored._tasks["chat"].arms[ARM].cost_drift
    assert isinstance(again, RankDriftMonitor)
    assert again.to_state() == st.cost_drift.to_state()


def test_an_older_checkpoint_keeps_page_hinkley_on_costs():
    # a policy from before the ranks: its checkpoint has no ``cost_drift_ranks`` and its
    # arms' cost monitors are Page-Hinkley states (without a ``"kind"``)
    policy = RoutingPolicy(PolicyConfig(cost_drift_ranks=False), default_arms=[ARM])
    for _tokens, cost in _cost_stream(2, 100):
        policy.update("chat", ARM, None, 1.0, cost)
    state = json.loads(json.dumps(policy.to_state()))
    del state["config"]["cost_drift_ranks"]
    assert "kind" not in state["tasks"]["chat"]["arms"][ARM]["dc"]
    restored = RoutingPolicy.from_state(state)
    assert not restored.config.cost_drift_ranks
    st = restored._tasks["chat"].arms[ARM]
    assert isinstance(st.cost_drift, DriftMonitor)
    assert st.cost_drift.to_state() == policy._tasks["chat"].arms[ARM].cost_drift.to_state()
    restored.register_arms("chat", ["new|p|c"])  # arms added later keep the older method too
    assert isinstance(restored._tasks["chat"].arms["new|p|c"].cost_drift, DriftMonitor)


def test_learn_cost_restarts_the_cost_model_on_a_rank_alarm():
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    signals = []
    for i, (tokens, cost) in enumerate(_cost_stream(4, 1500)):
        signal = learn_cost(costs, ARM, st, tokens, cost * (1.5 if i >= 600 else 1.0))
        if signal is not None:
            signals.append((i, signal))
    assert signals, "a 50 % rise of every cost must be found"
    first, signal = signals[0]
    assert 600 <= first < 700
    assert signal.metric == "cost" and signal.direction == 1
    assert st.cost.n < 1500 - first + 1  # the task's cost model started again
