"""The fleet's reference arm is chosen at a lower confidence bound (issue 15).

The highest of a dozen thin estimates is biased up: chosen by its estimate alone, the arm the
plan is anchored to was, after an unlucky start of the best arms, whichever cheap arm had been
luckiest.  ``reference_lower_bound_z`` picks the highest total lowered by that many standard
deviations -- unless that arm is the cheaper one, which is never relieved of the switch charge
on the strength of its evidence alone.
"""

from __future__ import annotations

from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.config import LEGACY_SETTINGS
from finops.optimizer.domain.policy.planner import plan_fleet_price

DEAR = "dear|p|c"
CHEAP = "cheap|p|c"


def _reference_after_lucky_start(bound_z: float | None) -> str | None:
    """The reference arm once a dear arm has 200 outcomes at 0.8 and a 10 x cheaper one five
    lucky successes out of five."""
    config = PolicyConfig(fleet_quality_target=0.99, reference_lower_bound_z=bound_z)
    policy = RoutingPolicy(config, default_arms=[DEAR, CHEAP])
    for i in range(200):
        policy.update("qa", DEAR, None, float(i % 5 != 0), 0.01)
    for _ in range(5):
        policy.update("qa", CHEAP, None, 1.0, 0.001)
    price = plan_fleet_price(config, [policy.plan_share()])
    assert price is not None
    return price.info["reference_arm"]


def test_a_lucky_cheap_arm_is_not_the_reference_at_the_lower_bound() -> None:
    assert _reference_after_lucky_start(1.0) == DEAR


def test_without_the_bound_the_lucky_cheap_arm_is_the_reference() -> None:
    assert _reference_after_lucky_start(None) == CHEAP


def test_the_default_bound_is_on_and_old_checkpoints_keep_the_highest_estimate() -> None:
    assert PolicyConfig().reference_lower_bound_z == 1.0
    assert LEGACY_SETTINGS["reference_lower_bound_z"] is None
