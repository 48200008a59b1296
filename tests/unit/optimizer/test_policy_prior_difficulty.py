"""Pooled priors compare arms on the task types they share (``prior_adjusts_difficulty``)."""

from __future__ import annotations

import math

import pytest

from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.config import LEGACY_SETTINGS
from finops.optimizer.domain.policy.difficulty import Cell, task_difficulties

STRONG, WEAK = "strong|p|c", "weak|p|c"


def _after_confounded_sampling(adjusts: bool) -> RoutingPolicy:
    """A family of three task types.  The strong arm was tried on the hard one only (3 of 4),
    the weak arm on the hard one once (a failure) and on the easy one six times (all right):
    pooled over the task types each happened to serve, the weak arm looks better."""
    config = PolicyConfig(fleet_quality_target=0.99, prior_adjusts_difficulty=adjusts)
    policy = RoutingPolicy(config, default_arms=[STRONG, WEAK])
    for q in (1.0, 1.0, 1.0, 0.0):
        policy.update("fam/math", STRONG, None, q, 1e-2)
    policy.update("fam/math", WEAK, None, 0.0, 1e-3)
    for _ in range(6):
        policy.update("fam/writing", WEAK, None, 1.0, 1e-3)
    policy.update("fam/coding", WEAK, None, 1.0, 1e-3)  # creates the third task type
    policy.replan()
    return policy


def _coding_prior(policy: RoutingPolicy, arm: str) -> float:
    return policy._tasks["fam/coding"].arms[arm].effective_prior()[0]


def test_a_pooled_prior_ranks_the_arms_by_the_task_types_they_share():
    adjusted = _after_confounded_sampling(adjusts=True)
    plain = _after_confounded_sampling(adjusts=False)
    # plain pooled means: the weak arm (6 of its 7 outcomes on the other task types right)
    # leads the strong one (3 of 4) on a task type neither has served much
    assert _coding_prior(plain, WEAK) > _coding_prior(plain, STRONG)
    # on the hard task type they share, the strong arm is far ahead: less the difficulty,
    # it leads on the third task type too
    assert _coding_prior(adjusted, STRONG) > _coding_prior(adjusted, WEAK)
    # the weak arm's easy task type no longer lifts it
    assert _coding_prior(adjusted, WEAK) < _coding_prior(plain, WEAK)


def test_arms_that_share_no_task_type_keep_their_pooled_means():
    # nothing compares x with y: the gap between their task types is left to the arms
    apart = task_difficulties([Cell("a", "x", 8, 0.9), Cell("b", "y", 8, 0.5)], ridge=2.0)
    assert apart == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-9)
    # one outcome of each on a shared task type, alike: part of the gap is the task types'
    shared = [Cell("a", "x", 8, 0.9), Cell("b", "y", 8, 0.5)]
    shared += [Cell("c", "x", 1, 0.7), Cell("c", "y", 1, 0.7)]
    effects = task_difficulties(shared, ridge=2.0)
    gap = math.log(0.9 / 0.1) - math.log(0.5 / 0.5)  # the whole gap, in log-odds
    assert 0.2 * gap < effects["a"] - effects["b"] < 0.8 * gap  # part of it, on two outcomes


def test_the_legacy_setting_keeps_plain_pooled_means():
    assert LEGACY_SETTINGS["prior_adjusts_difficulty"] is False
    assert PolicyConfig().prior_adjusts_difficulty is True
