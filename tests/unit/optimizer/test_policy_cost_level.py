"""The cost drift detector's reference: partly the cost level frozen when it settled
(``cost_drift_level_weight``).

Against the learning cost model, a running mean that takes in half of a rise within ~300
calls, a rise soon after the start fades from the residual before the ranks have the
evidence; against a reference halfway (in log) to the model's level kept as it was when the
detector settled (its means of input tokens and cost, with the arm's current slope) it fades
half as much.
"""

from __future__ import annotations

import json
import math
import random

from finops.optimizer.domain.arms import ArmStats, CostLevel, CostModel
from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.learning import learn_cost

ARM = "only|p|c"
RISE_AT = 300


def _calls(
    seed: int,
    n: int,
    *,
    output_sd: float = 0.3,
    rise_at: int | None = None,
    tokens: tuple[float, float] = (400.0, 400.0),
    sizes_at: int | None = None,
) -> list[tuple[int, float]]:
    """``(input_tokens, cost)`` of a chat arm priced like gpt-4o: input tokens lognormal
    around ``tokens[0]`` (``tokens[1]`` from call ``sizes_at`` on), output tokens lognormal
    around 300 with log-sd ``output_sd``, 15 % more of them from call ``rise_at`` on."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        median = tokens[1] if sizes_at is not None and i >= sizes_at else tokens[0]
        tok = max(10, round(median * math.exp(rng.gauss(0, 0.5))))
        out = 300 * math.exp(rng.gauss(0, output_sd))
        if rise_at is not None and i >= rise_at:
            out *= 1.15
        calls.append((tok, tok * 2.5e-6 + max(1, round(out)) * 1e-5))
    return calls


HALFWAY = PolicyConfig().cost_drift_level_weight


def _alarms(calls: list[tuple[int, float]], level_weight: float = HALFWAY) -> list[int]:
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    return [
        i
        for i, (tokens, cost) in enumerate(calls)
        if learn_cost(costs, ARM, st, tokens, cost, level_weight) is not None
    ]


def test_the_default_reference_is_halfway():
    assert HALFWAY == 0.5


def test_a_rise_from_call_300_is_found_in_more_seeds_than_against_the_learning_model():
    streams = [_calls(seed, RISE_AT + 1000, rise_at=RISE_AT) for seed in range(10)]
    halfway = {seed: _alarms(calls) for seed, calls in enumerate(streams)}
    learning = {seed: _alarms(calls, 0.0) for seed, calls in enumerate(streams)}
    found = {seed for seed, run in halfway.items() if run}
    assert found == {0, 1, 3, 6, 8}, halfway  # first alarms 369-518
    assert all(RISE_AT <= run[0] < RISE_AT + 300 for run in halfway.values() if run)
    assert {seed for seed, run in learning.items() if run} == {0, 6, 8}, learning
    # the frozen level alone finds 9 of 10
    assert sum(1 for calls in streams if _alarms(calls, 1.0)) == 9


def test_a_stationary_heavy_tailed_stream_raises_no_alarm():
    for seed in range(10):
        assert _alarms(_calls(seed, 10_000, output_sd=1.0)) == [], seed


def test_prompts_growing_alone_raise_no_alarm():
    # no price changes, only the prompts' sizes: the level keeps the arm's current slope
    for seed in range(10):
        grown = _calls(seed, 3000, tokens=(190.0, 800.0), sizes_at=150)
        assert _alarms(grown) == [], seed
        quadrupled = _calls(seed, 3000, tokens=(400.0, 1600.0), sizes_at=1000)
        assert _alarms(quadrupled) == [], seed


def test_the_level_is_taken_when_the_detector_settles_and_kept_until_an_alarm():
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    settle = st.cost_drift.settle
    calls = _calls(4, 1500)
    for tokens, cost in calls[:settle]:  # the first call has no expected cost to compare with
        learn_cost(costs, ARM, st, tokens, cost, HALFWAY)
    assert st.cost_level is None
    learn_cost(costs, ARM, st, *calls[settle], HALFWAY)
    assert st.cost_level == CostLevel(st.cost.mean_tok, st.cost.mean_cost)
    kept = st.cost_level
    alarm = None
    for i, (tokens, cost) in enumerate(calls[settle + 1 :], start=settle + 1):
        risen = cost * (1.5 if i >= 600 else 1.0)
        if learn_cost(costs, ARM, st, tokens, risen, HALFWAY) is not None:
            alarm = i
            break
        assert st.cost_level is kept
    assert alarm is not None and 600 <= alarm < 700
    assert st.cost_level is None  # the detector restarted: a new level once it settles


def test_with_a_weight_of_zero_no_level_is_kept():
    costs, st = CostBook(), ArmStats(cost_ranks=True)
    for tokens, cost in _calls(5, 300):
        learn_cost(costs, ARM, st, tokens, cost)
    assert st.cost_level is None
    assert "cl" not in st.to_state()


def test_the_level_expects_the_current_slope_and_has_a_floor():
    level = CostLevel.of(CostModel(n=50.0, mean_tok=200.0, mean_cost=0.003))
    assert math.isclose(level.expected(400.0, slope=1e-5), 0.005)
    assert math.isclose(level.expected(None, slope=1e-5), 0.003)
    assert math.isclose(level.expected(0.0, slope=1e-4), 0.05 * 0.003)


def test_a_checkpoint_midstream_keeps_the_level_and_gives_the_same_alarms():
    calls = _calls(2, 1300, rise_at=RISE_AT)
    config = PolicyConfig(cost_drift_ranks=True, cost_drift_level_weight=1.0)
    policy = RoutingPolicy(config, default_arms=[ARM])

    def feed(p: RoutingPolicy, part: list[tuple[int, float]]) -> list[dict]:
        events = []
        for tokens, cost in part:
            events += p.update("chat", ARM, {"input_tokens": float(tokens)}, 1.0, cost)
        return events

    assert feed(policy, calls[:250]) == []
    state = json.loads(json.dumps(policy.to_state()))
    assert state["tasks"]["chat"]["arms"][ARM]["cl"] is not None
    restored = RoutingPolicy.from_state(state)
    assert restored.config.cost_drift_level_weight == 1.0
    st = restored._tasks["chat"].arms[ARM]
    assert st.cost_level == policy._tasks["chat"].arms[ARM].cost_level
    whole, again = feed(policy, calls[250:]), feed(restored, calls[250:])
    assert [e["metric"] for e in whole] == ["cost"]
    assert again == whole


def test_an_older_checkpoint_keeps_the_learning_model_as_the_reference():
    policy = RoutingPolicy(PolicyConfig(cost_drift_level_weight=0.0), default_arms=[ARM])
    for tokens, cost in _calls(3, 200):
        policy.update("chat", ARM, {"input_tokens": float(tokens)}, 1.0, cost)
    state = json.loads(json.dumps(policy.to_state()))
    del state["config"]["cost_drift_level_weight"]
    assert "cl" not in state["tasks"]["chat"]["arms"][ARM]
    restored = RoutingPolicy.from_state(state)
    assert restored.config.cost_drift_level_weight == 0.0
    assert restored._tasks["chat"].arms[ARM].cost_level is None
