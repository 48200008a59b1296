"""Why an explored request was explored: ``Decision.exploration`` and the reason name the step of
the exploration that gave the arm its probability (:class:`~.mechanism.Mechanism`)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from finops.optimizer.domain.policy import (
    Decision,
    Mechanism,
    Objective,
    PolicyConfig,
    RoutingPolicy,
)

#: arm -> (chance of a right answer, cost in USD)
ARMS = {"big|p|c": (0.85, 0.01), "mid|p|c": (0.8, 0.004), "small|p|c": (0.6, 0.0005)}
#: a fleet like the one-task set of bench/backtest.py: two strong arms, many weak cheap ones
MANY_ARMS = {
    **ARMS,
    **{f"weak{i}|p|c": (0.5 + 0.05 * i, 0.0002 * (i + 1)) for i in range(6)},
}


@dataclass(frozen=True)
class _Pick:
    decision: Decision
    #: outcomes the policy had of the chosen arm before this request
    arm_outcomes: int
    #: the fleet's reference arm when the request came
    reference_arm: str | None


def _replay(
    target: float | None,
    requests: int = 600,
    arms: dict[str, tuple[float, float]] = ARMS,
    objective: Objective | None = None,
    seed: int = 3,
) -> list[_Pick]:
    policy = RoutingPolicy(PolicyConfig(fleet_quality_target=target, seed=seed))
    policy.register_arms("qa", list(arms))
    if objective is not None:
        policy.set_objective("qa", objective)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    picks = []
    for _ in range(requests):
        reference = policy.status().get("reference_arm")
        decision = policy.recommend("qa", None, rng)
        picks.append(_Pick(decision, outcomes[decision.arm], reference))
        p_right, cost = arms[decision.arm]
        policy.update("qa", decision.arm, None, float(rng.random() < p_right), cost)
        outcomes[decision.arm] += 1
    return picks


def test_every_explored_pick_names_its_mechanism_and_no_greedy_pick_does():
    unreachable = Objective(quality_floor=0.99)  # no arm meets it: the relaxed choice
    for target, arms, objective in [
        (None, ARMS, None),
        (0.95, ARMS, None),
        (0.99, MANY_ARMS, None),
        (None, ARMS, unreachable),
    ]:
        decisions = [pick.decision for pick in _replay(target, arms=arms, objective=objective)]
        explored = [d for d in decisions if d.explored]
        assert explored, target
        assert all(isinstance(d.exploration, Mechanism) for d in explored)
        assert all(d.reason.startswith(f"explore ({d.exploration}, p=") for d in explored)
        assert all(d.exploration is None for d in decisions if not d.explored)


def test_fair_trials_are_of_arms_with_thin_evidence_and_audits_of_the_reference_arm():
    # seed 5: the reference moves from the dearest arm to the middle one and back, so there is
    # a reference other than the greedy arm to audit (at seed 3 the dearest arm is both throughout)
    picks = _replay(0.95, seed=5)
    by = Counter(pick.decision.exploration for pick in picks)
    assert by[Mechanism.FAIR_TRIAL] > 0 and by[Mechanism.AUDIT] > 0
    thin = PolicyConfig().explore_min_obs
    for pick in picks:
        if pick.decision.exploration is Mechanism.FAIR_TRIAL:
            assert pick.arm_outcomes < thin
        if pick.decision.exploration is Mechanism.AUDIT:
            assert pick.decision.arm == pick.reference_arm


def test_a_strict_target_over_many_arms_identifies_the_best_and_samples_by_thompson():
    by = Counter(pick.decision.exploration for pick in _replay(0.99, arms=MANY_ARMS))
    assert by[Mechanism.IDENTIFY] > 0 and by[Mechanism.THOMPSON] > 0


def test_a_decision_as_a_dict_carries_the_mechanism_as_plain_text():
    explored = next(pick.decision for pick in _replay(0.95) if pick.decision.explored)
    as_dict = explored.to_dict()
    assert type(as_dict["exploration"]) is str
    assert as_dict["exploration"] == explored.exploration.value  # type: ignore[union-attr]
