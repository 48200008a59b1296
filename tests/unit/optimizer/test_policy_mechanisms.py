"""Why an explored request was explored: ``Decision.exploration`` and the reason name the step of
the exploration that gave the arm its probability (:class:`~.exploration.Mechanism`)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from finops.optimizer.domain.policy import Decision, PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.exploration import Mechanism

#: arm -> (chance of a right answer, cost in USD)
ARMS = {"big|p|c": (0.85, 0.01), "mid|p|c": (0.8, 0.004), "small|p|c": (0.6, 0.0005)}


@dataclass(frozen=True)
class _Pick:
    decision: Decision
    #: outcomes the policy had of the chosen arm before this request
    arm_outcomes: int
    #: the fleet's reference arm when the request came
    reference_arm: str | None


def _replay(target: float | None, requests: int = 600) -> list[_Pick]:
    policy = RoutingPolicy(PolicyConfig(fleet_quality_target=target, seed=3))
    policy.register_arms("qa", list(ARMS))
    rng = random.Random(3)
    outcomes: Counter[str] = Counter()
    picks = []
    for _ in range(requests):
        reference = policy.status().get("reference_arm")
        decision = policy.recommend("qa", None, rng)
        picks.append(_Pick(decision, outcomes[decision.arm], reference))
        p_right, cost = ARMS[decision.arm]
        policy.update("qa", decision.arm, None, float(rng.random() < p_right), cost)
        outcomes[decision.arm] += 1
    return picks


def test_every_explored_pick_names_its_mechanism_and_no_greedy_pick_does():
    for target in (None, 0.95):
        decisions = [pick.decision for pick in _replay(target)]
        explored = [d for d in decisions if d.explored]
        assert explored, target
        assert all(isinstance(d.exploration, Mechanism) for d in explored)
        assert all(d.reason.startswith(f"explore ({d.exploration}, p=") for d in explored)
        assert all(d.exploration is None for d in decisions if not d.explored)


def test_fair_trials_are_of_arms_with_thin_evidence_and_audits_of_the_reference_arm():
    picks = _replay(0.95)
    by = Counter(pick.decision.exploration for pick in picks)
    assert by[Mechanism.FAIR_TRIAL] > 0 and by[Mechanism.AUDIT] > 0
    thin = PolicyConfig().explore_min_obs
    for pick in picks:
        if pick.decision.exploration is Mechanism.FAIR_TRIAL:
            assert pick.arm_outcomes < thin
        if pick.decision.exploration is Mechanism.AUDIT:
            assert pick.decision.arm == pick.reference_arm


def test_a_decision_as_a_dict_carries_the_mechanism_as_its_text():
    explored = next(pick.decision for pick in _replay(0.95) if pick.decision.explored)
    assert explored.to_dict()["exploration"] == str(explored.exploration)
