"""bench/_cost_level.py: the cost drift detector's residual against a frozen level (tried
in bench/drift.py, not in the policy)."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

from finops.optimizer.domain.arms import ArmStats
from finops.optimizer.domain.policy import routing
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.learning import learn_cost

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from _cost_level import CostLevel, FrozenLevels, policy_with_frozen_levels  # noqa: E402

ARM = "only|p|c"


def _calls(seed: int, n: int, rise_at: int | None = None) -> list[tuple[int, float]]:
    """``(input_tokens, cost)`` priced like gpt-4o: input tokens lognormal around 400, output
    tokens around 300 (log-sd 0.3), 15 % more of them from call ``rise_at`` on."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        tokens = max(10, round(400 * math.exp(rng.gauss(0, 0.5))))
        out = 300 * math.exp(rng.gauss(0, 0.3)) * (1.15 if rise_at and i >= rise_at else 1.0)
        calls.append((tokens, tokens * 2.5e-6 + max(1, round(out)) * 1e-5))
    return calls


def _found(calls: list[tuple[int, float]], frozen: bool) -> list[int]:
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    learn = FrozenLevels().learn_cost if frozen else learn_cost
    return [i for i, (t, c) in enumerate(calls) if learn(costs, ARM, st, t, c) is not None]


def test_a_rise_from_call_300_is_found_more_often_against_the_frozen_level():
    streams = [_calls(seed, 1300, rise_at=300) for seed in range(10)]
    frozen = [_found(calls, True) for calls in streams]
    assert sum(1 for run in frozen if run) >= 8, frozen  # 9 of 10
    assert all(300 <= run[0] < 700 for run in frozen if run), frozen
    assert sum(1 for calls in streams if _found(calls, False)) <= 4  # 3 of 10


def test_a_weight_of_zero_is_the_learning_model():
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    calls = _calls(8, 1300, rise_at=300)
    learned = [i for i, (t, c) in enumerate(calls) if learn_cost(costs, ARM, st, t, c)]
    costs, st, levels = CostBook(), ArmStats(cost_ranks=True), FrozenLevels(weight=0.0)
    weighed = [i for i, (t, c) in enumerate(calls) if levels.learn_cost(costs, ARM, st, t, c)]
    assert weighed == learned
    assert learned  # seed 8: one of the rises the learning model finds
    assert _found(calls, True) != learned  # the frozen level reads the same costs otherwise


def test_a_stationary_stream_raises_no_alarm():
    for seed in range(5):
        assert _found(_calls(seed, 5000), True) == [], seed


def test_the_level_is_taken_when_the_detector_settles():
    levels, costs, st = FrozenLevels(), CostBook(), ArmStats(cost_ranks=True)
    calls = _calls(4, 200)
    settle = st.cost_drift.settle
    for tokens, cost in calls[:settle]:  # the first call has nothing to compare with
        levels.learn_cost(costs, ARM, st, tokens, cost)
    assert levels._levels == {}
    levels.learn_cost(costs, ARM, st, *calls[settle])
    assert levels._levels[id(st)][1] == CostLevel(st.cost.mean_tok, st.cost.mean_cost)


def test_the_level_expects_the_current_slope_and_has_a_floor():
    level = CostLevel(mean_tok=200.0, mean_cost=0.003)
    assert math.isclose(level.expected(400.0, slope=1e-5), 0.005)
    assert math.isclose(level.expected(None, slope=1e-5), 0.003)
    assert math.isclose(level.expected(0.0, slope=1e-4), 0.05 * 0.003)


def test_the_policy_gets_its_own_learn_cost_back():
    with policy_with_frozen_levels():
        assert routing.learn_cost is not learn_cost
    assert routing.learn_cost is learn_cost
    with pytest.raises(RuntimeError), policy_with_frozen_levels():
        raise RuntimeError("a replay failed")
    assert routing.learn_cost is learn_cost
