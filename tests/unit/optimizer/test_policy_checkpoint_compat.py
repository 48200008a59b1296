"""A checkpoint written by the single-module policy (before it became a package) still loads.

The optimizer restores its policy from a state saved in PostgreSQL, so the format of
``RoutingPolicy.to_state`` is a contract.  ``fixtures/policy_state_v1.json`` was written by
``fixtures/make_policy_state_v1.py`` with the code of commit 1a6ab12 (``domain/policy.py``): for
two scenarios (a fleet quality target; per-scope objectives) it holds the saved state, the
policy's status and the next twelve recommendations the restored policy made.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from finops.optimizer.domain.features import prompt_features
from finops.optimizer.domain.policy import Mechanism, PolicyConfig, RoutingPolicy
from finops.optimizer.domain.policy.config import LEGACY_SETTINGS

FIXTURE = Path(__file__).parent / "fixtures" / "policy_state_v1.json"


def _next_recommendations(policy: RoutingPolicy) -> list[dict]:
    """The same requests the fixture script asked for (one task type is new to the policy)."""
    rng = random.Random(11)
    out = []
    for t in range(12):
        task = ["mmlu/a", "mmlu/b", "gsm8k", "mmlu/new"][t % 4]
        feats = prompt_features("why prove code " * (t + 1), input_tokens=float(50 * (t + 1)))
        out.append(policy.recommend(task, feats if t % 2 else None, rng).to_dict())
    return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("scenario", ["fleet_target", "objectives"])
def test_an_old_checkpoint_restores_to_the_same_state_and_status(saved, scenario):
    old = saved[scenario]
    policy = RoutingPolicy.from_state(old["state"])
    restored = json.loads(json.dumps(policy.to_state()))
    old_config = old["state"]["config"]
    added = {k: v for k, v in restored["config"].items() if k not in old_config}
    # knobs added since are recorded at the values that keep the old behaviour
    defaults = PolicyConfig()
    assert added == {k: LEGACY_SETTINGS.get(k, getattr(defaults, k)) for k in added}
    assert set(LEGACY_SETTINGS) <= set(added)
    restored["config"] = {k: v for k, v in restored["config"].items() if k in old_config}
    assert restored == old["state"]
    assert policy.status() == old["status"]


def _as_written_then(recommendation: dict) -> dict:
    """A recommendation as the fixture's code wrote it: without the mechanism of an explored
    pick (``exploration``, and its name in the reason), added since."""
    then = {k: v for k, v in recommendation.items() if k != "exploration"}
    then["reason"] = re.sub(r"^explore \([a-z_]+, p=", "explore (p=", then["reason"])
    return then


@pytest.mark.parametrize("scenario", ["fleet_target", "objectives"])
def test_an_old_checkpoint_gives_the_same_next_recommendations(saved, scenario):
    old = saved[scenario]
    policy = RoutingPolicy.from_state(old["state"])
    recommendations = _next_recommendations(policy)
    assert [r["arm"] for r in recommendations] == [r["arm"] for r in old["next_recommendations"]]
    assert [_as_written_then(r) for r in recommendations] == old["next_recommendations"]
    explored = [r for r in recommendations if r["explored"]]
    assert all(r["exploration"] in set(Mechanism) for r in explored)
    assert all(r["reason"].startswith(f"explore ({r['exploration']}, p=") for r in explored)
    assert all(r["exploration"] is None for r in recommendations if not r["explored"])


def test_the_fixture_covers_a_fractional_fleet_plan_drifts_and_exploration(saved):
    fleet = saved["fleet_target"]
    state = fleet["state"]
    assert 0.0 < state["mu_mix"] < 1.0  # two marginal prices are mixed
    assert {e["metric"] for e in state["drift_events"]} == {"cost"}
    assert any(r["explored"] for r in fleet["next_recommendations"])
    assert fleet["status"]["reference_arm"] == "big|p|default"
    assert "hinted|p|default" in saved["objectives"]["state"]["cost_hints"]
