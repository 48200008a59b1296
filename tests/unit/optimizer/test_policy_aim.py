"""The fleet planner's aim: the margin above the target (issue 15, step 2, fifth pass).

With a dozen arms, the largest upper bound over every arm is set by the one with the thinnest
evidence and holds the aim near 1 (a saturated plan, price 0) long after the reference is
known; ``aim_margin_of_reference`` takes the margin from the reference arm's own total, and
from arms never observed, whose prior is all that is known of them.
"""

from __future__ import annotations

import random

from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy

TOP = "top|p|c"
THIN = [f"thin-{i}|p|c" for i in range(6)]
TARGET = 0.95


def _aim(margin_of_reference: bool, thin_outcomes: int) -> float:
    """The aim after the top arm served 200 requests (160 good) and each other arm
    ``thin_outcomes`` (three in four good), interleaved."""
    config = PolicyConfig(fleet_quality_target=TARGET, aim_margin_of_reference=margin_of_reference)
    policy = RoutingPolicy(config, default_arms=[TOP, *THIN])
    rng = random.Random(3)
    top = [1.0] * 160 + [0.0] * 40
    rng.shuffle(top)
    for i, q in enumerate(top):
        policy.update("qa", TOP, None, q, 1e-2)
        if i < thin_outcomes:
            for arm in THIN:
                policy.update("qa", arm, None, float(i % 4 != 3), 1e-3)
    policy.replan()
    return policy.status()["aim"]


def test_arms_with_thin_evidence_no_longer_hold_the_aim_near_one():
    legacy, of_reference = _aim(False, 4), _aim(True, 4)
    assert legacy == 1.0  # four outcomes of an arm: its upper bound exceeds the top arm's
    assert TARGET < of_reference < 0.97


def test_an_arm_never_observed_still_sets_the_margin():
    assert _aim(True, 0) == _aim(False, 0) == 1.0


def test_the_legacy_setting_restores_the_largest_upper_bound_over_every_arm():
    from finops.optimizer.domain.policy.config import LEGACY_SETTINGS

    assert LEGACY_SETTINGS["aim_margin_of_reference"] is False
    assert PolicyConfig().aim_margin_of_reference is True
