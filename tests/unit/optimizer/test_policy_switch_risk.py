"""A switch from the fleet's reference arm to a cheaper one is scored at its risk (issue 15).

On a few outcomes per task type the better of two estimates is the luckier one: served where
it looks as good as the reference, the cheaper arm spends quality the target does not have.
"""

from __future__ import annotations

import random

from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy

BIG = "big|p|c"
SMALL = "small|p|c"


def _choice(switch_risk_z: float | None) -> dict[str, dict[str, float]]:
    """Each arm's plain estimate and choice probability on a new task type where the cheap
    arm's thin start (5 of 5) beats the reference arm's (3 of 4), at a 0.99 fleet target; on
    an established family the big arm is clearly better (0.9 against 0.75)."""
    config = PolicyConfig(fleet_quality_target=0.99, seed=0, switch_risk_z=switch_risk_z)
    policy = RoutingPolicy(config, default_arms=[BIG, SMALL])
    rng = random.Random(5)
    for _ in range(200):
        policy.update("known/qa", BIG, None, float(rng.random() < 0.9), 1e-2)
        policy.update("known/qa", SMALL, None, float(rng.random() < 0.75), 1e-4)
    for q in (1.0, 1.0, 1.0, 1.0, 1.0):
        policy.update("new/qa", SMALL, None, q, 1e-4)
    for q in (1.0, 0.0, 1.0, 1.0):
        policy.update("new/qa", BIG, None, q, 1e-2)
    policy.replan()
    assert policy.status()["reference_arm"] == BIG
    decision = policy.recommend("new/qa", None, random.Random(0))
    return {
        a["arm"]: {"quality": a["expected_quality"], "probability": a["probability"]}
        for a in decision.alternatives
    }


def test_the_luckier_cheap_arm_is_not_served_instead_of_the_reference_on_thin_evidence():
    plain, charged = _choice(None), _choice(1.0)
    # the plain estimates say the cheap arm is better here, and it is the greedy pick
    assert plain[SMALL]["quality"] > plain[BIG]["quality"]
    assert plain[SMALL]["probability"] > 0.5
    # charged one standard deviation of the difference, the reference arm keeps the request
    assert charged[BIG]["probability"] > 0.5
    # the estimates themselves are the same: only the score of the switch changed
    assert charged[SMALL]["quality"] == plain[SMALL]["quality"]
