"""`finops simulate` against a whole local stack: nothing lost, its figures add up."""

from __future__ import annotations

import json

import pytest
from cli_stack import finops

# the simulation may take 600 s on a loaded machine (its own timeout below), the stack's
# start and stop more: beyond the suite's 300 s
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: the run stops its experiments the analysis has not decided: none is left running
DECISIONS = {"decided", "stopped"}


def test_the_default_simulation_saves_keeps_quality_heals_and_its_json_adds_up(stack_env):
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        # The issues' figures are those of the default run (2,000 tasks, 4 agents, seed 42;
        # 1-8 min on a shared machine). Its saving used to swing (0.23 to 0.59): when the
        # summarize experiment's analysis caught up, and which variant its 130k-token prompts
        # were hashed to, moved it; the run now paces on the experiments too, keeps prompts a
        # variant cannot fit out of the experiment, salts it with the seed and chooses each
        # round's models in task order (docs/simulator.md, the figures before and after).
        run = finops("simulate", "--json", env=stack_env, timeout=600)
    finally:
        down = finops("down", env=stack_env)
    assert run.returncode == 0, run.stderr
    assert down.returncode == 0, down.stderr
    result = json.loads(run.stdout)

    assert result["lost_events"] == 0
    # one agent.error per failed attempt, one agent.llm_call per answered task
    assert (result["calls"], result["agents"], result["seed"]) == (2000, 4, 42)
    assert result["events_sent"] == result["errors"] + result["answered"] > 2000
    assert sum(result["models_used"].values()) == result["answered"]
    assert 0 <= result["healed"] <= result["recoverable_errors"] <= result["errors"]
    assert result["healed_ratio"] == pytest.approx(
        result["healed"] / result["recoverable_errors"], abs=1e-4
    )
    assert result["saving"] == pytest.approx(
        1 - result["optimized_cost_usd"] / result["baseline_cost_usd"], abs=1e-3
    )
    assert result["quality_ratio"] == pytest.approx(
        result["optimized_quality"] / result["baseline_quality"], abs=1e-3
    )
    # issue 13's figures (on the default run too: docs/simulator.md): the fleet took cheaper
    # models than the baseline's
    assert result["saving"] >= 0.30
    assert result["quality_ratio"] >= 0.95
    # issue 10: healing through call() and the healer gets past >= 95 % of the recoverable
    # errors and never makes a non-recoverable call again (the baseline's naive retries do)
    assert result["healed_ratio"] >= 0.95
    assert result["recoverable_errors"] > 0 and result["errors"] > result["recoverable_errors"]
    assert result["unrecoverable_retried"] == 0 < result["baseline_unrecoverable_retried"]
    # the baseline met the same faults: naive retries get past fewer of them
    assert result["baseline_healed_ratio"] < result["healed_ratio"]

    experiments = {e["kind"]: e for e in result["experiments"]}
    assert set(experiments) == {"cheaper_variant", "a_a"}
    for experiment in experiments.values():
        # both start: the service knows their task types from the warm-up's untagged calls
        assert experiment["decision"] in DECISIONS
        assert experiment["promoted"] <= (experiment["winner"] is not None)
        assert sum(experiment["samples"]) > 0

    # the injected quality drift, and whether a drift alert of the run said so: the broker
    # answered, so it is known either way. Whether the optimizer's detector fires in 2,000
    # tasks is not asserted (it did not in the first run of 2026-12-07); the other drift
    # alerts are listed with their metric
    (drift,) = result["drifts"]
    assert (drift["task_type"], drift["injected_at"], drift["followed_traffic"]) == (
        "extract",
        0.5,
        True,
    )
    # it landed on a model the fleet answered with (drift_targets' unit tests: which one)
    assert drift["model"] in {arm.split("/", 1)[1] for arm in result["models_used"]}
    assert 0.0 < drift["served_before"] <= 1.0 and 0.0 <= drift["served_after"] <= 1.0
    assert isinstance(drift["noticed"], bool)
    assert 0 < drift.get("noticed_at", 1) <= 1
    assert all(o["what"] in {"quality", "cost", "latency"} for o in result["other_drift_alerts"])
