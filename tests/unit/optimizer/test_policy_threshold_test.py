"""Threshold tests of cheap arms near the target (``PolicyConfig.threshold_test_mixture``)."""

from __future__ import annotations

from finops.optimizer.domain.arms import ArmStats
from finops.optimizer.domain.policy import Mechanism, Objective, PolicyConfig
from finops.optimizer.domain.policy.config import LEGACY_SETTINGS
from finops.optimizer.domain.policy.costs import CostBook
from finops.optimizer.domain.policy.estimates import estimate_arms
from finops.optimizer.domain.policy.exploration import ExplorationInputs, choice_probs
from finops.optimizer.domain.policy.task import TaskState

BIG, CHEAP = "big|p|c", "cheap|p|c"


def _cheap_rate_after_an_unlucky_start(mixture: float | None) -> tuple[float, Mechanism | None]:
    """Choice probability of an arm 10 x cheaper at exactly 95 % of the best arm's quality, at
    a 0.95 target and price 0 (the best arm is greedy), after its first 40 outcomes were
    unlucky: 60 % right (truth 76 %), about 2.3 standard deviations below the bar; and what
    gave it that probability."""
    config = PolicyConfig(fleet_quality_target=0.95, threshold_test_mixture=mixture)
    task = TaskState("qa")
    task.arms = {BIG: ArmStats(), CHEAP: ArmStats()}
    for i in range(400):
        task.arms[BIG].quality.add(float(i % 5 != 0))  # 0.80
    for i in range(40):
        task.arms[CHEAP].quality.add(float(i < 24))  # 0.60
    task.n = task.picks = 440
    arms = [BIG, CHEAP]
    est = estimate_arms(config, task, arms, None, {}, CostBook(hints={BIG: 1e-2, CHEAP: 1e-3}))
    inputs = ExplorationInputs(config, task, arms, Objective(), est, {BIG}, BIG, headroom=0.05)
    choice = choice_probs(inputs, 0.0)
    assert choice.greedy == 0
    assert choice.mechanisms[0] is None  # the greedy arm is not explored
    return choice.probs[1], choice.mechanisms[1]


def test_an_unlucky_start_does_not_reject_an_arm_at_the_bar():
    # the fixed-sample test has rejected it: the exploration floor (0.01) is left
    rate, mechanism = _cheap_rate_after_an_unlucky_start(None)
    assert rate <= 0.0101
    assert mechanism is Mechanism.FLOOR
    # the anytime-valid one keeps testing it at the rate the slack allows: a fifth of the 5 %
    # slack of the greedy estimate 0.7985 over the expected loss 0.7985 - 0.5952 (prior included)
    rate, mechanism = _cheap_rate_after_an_unlucky_start(10.0)
    assert abs(rate - 0.2 * 0.05 * 0.7985 / 0.2033) < 1e-3
    assert mechanism is Mechanism.THRESHOLD_TEST


def test_the_legacy_setting_keeps_the_fixed_sample_test():
    assert LEGACY_SETTINGS["threshold_test_mixture"] is None
    assert PolicyConfig().threshold_test_mixture == 10.0
