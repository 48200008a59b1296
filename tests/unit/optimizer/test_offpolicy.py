"""Off-policy estimates recover the true value of policies that were never run."""

from __future__ import annotations

import random

import pytest

from finops.optimizer.domain.offpolicy import evaluate, join, target_policy

ARMS = {"big|openai|default": (0.9, 0.010), "small|openai|default": (0.6, 0.001)}


def logged(n: int, seed: int = 0):
    rng = random.Random(seed)
    recs, outcomes = [], []
    for i in range(n):
        big_p = 0.7  # the logging policy prefers the big arm
        arm = "big|openai|default" if rng.random() < big_p else "small|openai|default"
        p = big_p if arm.startswith("big") else 1 - big_p
        q_true, cost = ARMS[arm]
        recs.append(
            {
                "recommendation_id": f"r{i}",
                "task_type": "qa",
                "arm": arm,
                "propensity": p,
                "alternatives": [
                    {"arm": a, "expected_quality": q, "expected_cost_usd": c}
                    for a, (q, c) in ARMS.items()
                ],
            }
        )
        outcomes.append(
            {
                "data": {
                    "model": arm.split("|")[0],
                    "provider": "openai",
                    "quality": float(rng.random() < q_true),
                    "cost_usd": cost,
                    "success": True,
                    "decision": {"recommendation_id": f"r{i}", "propensity": p},
                }
            }
        )
    return recs, outcomes


def test_estimators_recover_the_value_of_unlogged_policies():
    samples, stats = join(*logged(6000))
    assert stats.joined == 6000
    cheap = evaluate(samples, target_policy("cheapest"), "cheapest")
    assert cheap.ips_quality == pytest.approx(0.6, abs=0.04)
    assert cheap.snips_quality == pytest.approx(0.6, abs=0.03)
    assert cheap.dr_quality == pytest.approx(0.6, abs=0.03)
    assert cheap.dr_cost_usd == pytest.approx(0.001, rel=0.01)
    best = evaluate(samples, target_policy("best-quality"))
    assert best.snips_quality == pytest.approx(0.9, abs=0.02)
    assert best.logged_quality == pytest.approx(0.7 * 0.9 + 0.3 * 0.6, abs=0.02)
    assert 0 < cheap.effective_sample_size < cheap.samples
    within = evaluate(samples, target_policy("cheapest-within-90"))
    assert within.matched == best.matched
    fixed = evaluate(samples, target_policy("fixed:small|openai|default"))
    assert fixed.matched == cheap.matched


def test_join_skips_outcomes_that_did_not_follow_the_recommendation():
    recs, outcomes = logged(10)
    outcomes[0]["data"]["model"] = "other-model"
    outcomes[1]["data"]["decision"]["recommendation_id"] = "unknown"
    outcomes.append(dict(outcomes[2]))  # a duplicate report
    outcomes.append({"data": {"model": "x", "provider": "y"}})  # no decision at all
    samples, stats = join(recs, outcomes)
    assert (stats.joined, stats.not_followed, stats.unmatched, stats.outcomes) == (8, 1, 2, 11)
    assert {s.recommendation_id for s in samples} == {f"r{i}" for i in range(2, 10)}


def test_unknown_policy_name_is_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        target_policy("magic")
