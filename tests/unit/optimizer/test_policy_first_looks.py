"""First looks charged to the quality slack at strict targets (issue 15, step 2, pass 8).

An arm's first outcomes on a task used to be exempt from the slack budget whatever they cost:
at a 0.99 target, three looks of every weak arm on every new task type spend more than the
target leaves.  Charged to the slack (``first_look_slack_z``), an arm known to be weak from
its other task families is looked at rarely on a new one (where the slack pays for the looks
they are unchanged: the doctests of :mod:`.first_looks`).
"""

from __future__ import annotations

import random

from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.config import LEGACY_SETTINGS

BIG = "big|p|c"
WEAK = [f"weak-{i}|p|c" for i in range(4)]
TRUTH = {BIG: 0.9, **{arm: 0.3 for arm in WEAK}}


def _weak_picks_on_new_families(target: float, first_look_slack_z: float | None) -> int:
    """Picks of the weak arms on three single-task families, 60 requests each, after every
    arm was seen on a first family (so their priors tell they are weak)."""
    config = PolicyConfig(
        fleet_quality_target=target, seed=5, first_look_slack_z=first_look_slack_z
    )
    policy = RoutingPolicy(config, default_arms=[BIG, *WEAK])
    rng = random.Random(5)
    for _ in range(30):
        for arm in [BIG, *WEAK]:
            policy.update("known/t", arm, None, float(rng.random() < TRUTH[arm]), 1e-3)
    policy.replan()
    weak = 0
    for family in ("new-a", "new-b", "new-c"):
        for _ in range(60):
            arm = policy.recommend(family, None, rng).arm
            policy.update(family, arm, None, float(rng.random() < TRUTH[arm]), 1e-3)
            weak += arm != BIG
    return weak


def test_at_a_strict_target_weak_arms_get_few_first_looks():
    charged = _weak_picks_on_new_families(0.99, 0.0)
    exempt = _weak_picks_on_new_families(0.99, None)
    # exempt: a look of each of four weak arms on each of three families
    assert exempt >= 12
    assert charged <= 2


def test_the_legacy_setting_keeps_first_looks_exempt():
    assert LEGACY_SETTINGS["first_look_slack_z"] is None
    assert PolicyConfig().first_look_slack_z == 0.0
