"""One fleet-wide shadow price over the learning partitions (issue 14): the planner's shares,
and a FleetView's fleet price against one engine fed every event."""

from __future__ import annotations

import json
import math
import random

import pytest
from support import llm_call

from finops.common.events import Event
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.fleet_view import FleetView, partition_of_task
from finops.optimizer.domain.policy import Objective, PolicyConfig, RoutingPolicy, family_of
from finops.optimizer.domain.policy import planner as planner_mod

PARTITIONS = 6
#: USD per call
MODELS = {"gpt-4o": 0.004, "gpt-4o-mini": 0.0005}
#: a family's success rate per model: the small model is close on mmlu and mtbench, far
#: behind on gsm8k and math (families on partitions 0, 2, 3 and 4 of 6)
TRUTH = {
    "mmlu": {"gpt-4o": 0.9, "gpt-4o-mini": 0.85},
    "gsm8k": {"gpt-4o": 0.95, "gpt-4o-mini": 0.7},
    "mtbench": {"gpt-4o": 0.85, "gpt-4o-mini": 0.8},
    "math": {"gpt-4o": 0.9, "gpt-4o-mini": 0.5},
}
TASKS = [f"{family}/task-{i}" for family in TRUTH for i in range(3)]


def call(task_type: str, model: str, quality: float, cost_usd: float) -> Event:
    """One outcome; every call has the same prompt size, so no cost slope is learned (the
    slope is pooled over task types across partitions)."""
    body = llm_call("agent", task_type=task_type, model=model, cost_usd=cost_usd, quality=quality)
    return Event.from_kafka(json.dumps(body).encode())


def outcomes(tasks: list[str], truth: dict[str, dict[str, float]], n: int) -> list[Event]:
    """``n`` calls spread over ``tasks``, each served by a model drawn at random; ``truth``:
    a family's success rate per model."""
    rng = random.Random(11)
    out = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        model = rng.choice(list(MODELS))
        p = truth[family_of(task)][model]
        out.append(call(task, model, float(rng.random() < p), MODELS[model]))
    return out


def published(engine: OptimizerEngine) -> OptimizerEngine:
    """The engine as a replica reads it: its view state, serialised and restored."""
    return OptimizerEngine.from_state(
        json.loads(json.dumps(dict((name, build()) for name, build in engine.view_parts())))
    )


def engine(target: float) -> OptimizerEngine:
    """An engine held to the fleet quality target alone (no per-task floor)."""
    out = OptimizerEngine(fleet_quality_target=target)
    out.set_objective("*", Objective())
    # plain estimates: charged their risk on 20 outcomes per arm and task type, mmlu's
    # switches to the small model cost what math's do and no partition has slack to share
    out.policy.config.switch_risk_z = None
    return out


def learned(
    events: list[Event], target: float
) -> tuple[OptimizerEngine, dict[int, OptimizerEngine]]:
    """One engine fed every event, and one per partition fed its share; every policy re-plans
    once more at the end, so all fit their priors on the same outcomes."""
    whole = engine(target)
    parts: dict[int, OptimizerEngine] = {}
    for event in events:
        whole.observe(event)
        partition = partition_of_task(event.data.task_type, PARTITIONS)
        if partition not in parts:
            parts[partition] = engine(target)
        parts[partition].observe(event)
    for one in (whole, *parts.values()):
        one.policy.replan()
    return whole, parts


def same(a: float, b: float) -> bool:
    return (math.isinf(a) and math.isinf(b)) or math.isclose(a, b, rel_tol=1e-9)


def view_of(parts: dict[int, OptimizerEngine]) -> FleetView:
    return FleetView({p: published(e) for p, e in parts.items()}, PARTITIONS, OptimizerEngine())


def test_the_views_fleet_price_is_the_one_engines_while_the_windows_are_not_full():
    # 240 outcomes: fewer than a planning window (256), so every partition's window holds
    # all of its requests and the merged window is the single engine's
    whole, parts = learned(outcomes(TASKS, TRUTH, 240), target=0.9)
    assert len(parts) == 4
    view = view_of(parts)
    one = whole.policy.status()
    assert 0.0 < one["mu"] < math.inf  # the target binds: a price is set by the sort
    fleet = view.policy_status()
    for key in ("mu", "mu_hi", "marginal_split", "estimated_quality_ratio", "aim", "ratio_se"):
        assert same(fleet[key], one[key]), key
    assert fleet["reference_arm"] == one["reference_arm"]
    assert fleet["updates"] == one["updates"] == 240
    own = [s["mu"] for s in fleet["partitions"].values()]
    assert not all(same(mu, one["mu"]) for mu in own)  # each partition's own price differs
    for partition, engine in view.engines.items():
        assert same(engine.policy.mu, one["mu"]), partition
        for task_type, task in engine.policy._tasks.items():
            assert same(task.audit, whole.policy._tasks[task_type].audit), task_type


def test_a_partition_with_slack_loosens_the_price_of_one_without():
    # mmlu (partition 0) loses little on the small model, math (partition 4) a lot: held to
    # the target on its own, math pays for the big model; the fleet spends mmlu's slack there
    truth = {family: TRUTH[family] for family in ("mmlu", "math")}
    tasks = [t for t in TASKS if family_of(t) in truth]
    whole, parts = learned(outcomes(tasks, truth, 240), target=0.8)
    strict = partition_of_task("math/task-0", PARTITIONS)
    assert sorted(parts) == sorted({partition_of_task("mmlu/task-0", PARTITIONS), strict})
    own_price = parts[strict].policy.mu
    assert own_price < math.inf
    view = view_of(parts)
    fleet_price = view.engines[strict].policy.mu
    assert fleet_price > own_price
    assert same(fleet_price, whole.policy.mu)
    assert view.policy_status()["partitions"][str(strict)]["mu"] == own_price


def test_a_partitions_status_stays_its_own_across_views_of_the_same_engines():
    # a reader keeps a partition's engine until the partition publishes again, and each view
    # installs the fleet price in it: the status shown must still be the published one
    truth = {family: TRUTH[family] for family in ("mmlu", "math")}
    tasks = [t for t in TASKS if family_of(t) in truth]
    _, parts = learned(outcomes(tasks, truth, 240), target=0.8)
    strict = partition_of_task("math/task-0", PARTITIONS)
    engines = {p: published(e) for p, e in parts.items()}
    statuses = {p: e.policy_status() for p, e in engines.items()}
    first = FleetView(engines, PARTITIONS, OptimizerEngine(), statuses)
    second = FleetView(engines, PARTITIONS, OptimizerEngine(), statuses)
    own_price = parts[strict].policy.mu
    assert engines[strict].policy.mu > own_price  # the first view installed the fleet price
    for view in (first, second):
        assert view.policy_status()["partitions"][str(strict)]["mu"] == own_price
    # without the published statuses, the second view reads back the installed fleet price
    unrecorded = FleetView(engines, PARTITIONS, OptimizerEngine())
    assert unrecorded.policy_status()["partitions"][str(strict)]["mu"] != own_price


def policy_fed(task_type: str, n: int, target: float = 0.9) -> RoutingPolicy:
    """A policy that recommended and learned ``n`` requests of one task type."""
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=target), default_arms=["big|p|c", "small|p|c"]
    )
    rng = random.Random(n)
    truth = {"big|p|c": (0.9, 0.01), "small|p|c": (0.8, 0.001)}
    for _ in range(n):
        decision = policy.recommend(task_type, None, rng)
        p, cost = truth[decision.arm]
        policy.update(task_type, decision.arm, None, float(rng.random() < p), cost)
    return policy


def test_full_windows_contribute_in_proportion_to_traffic():
    busy, quiet = policy_fed("qa/x", 600), policy_fed("code/y", 200)
    shares = [busy.plan_share(), quiet.plan_share()]
    assert [len(s.window.items) for s in shares] == [256, 200]
    merged = planner_mod._merged_window(256, shares, 800)
    # 256 x 600 / 800 and 256 x 200 / 800 requests, each share's most recent
    assert [len(requests) for _, requests in merged] == [192, 64]
    assert merged[0][1] == busy._window.chronological()[-192:]
    assert merged[1][1] == quiet._window.chronological()[-64:]


def test_the_exploration_loss_of_a_fleet_plan_is_weighted_by_traffic():
    busy, quiet = policy_fed("qa/x", 600), policy_fed("code/y", 200)
    shares = [busy.plan_share(), quiet.plan_share()]
    rates = [s.exploration_loss for s in shares]
    assert rates[0] != rates[1] and min(rates) > 0.0
    price = planner_mod.plan_fleet_price(busy.config, shares)
    assert price is not None
    assert price.info["exploration_loss"] == pytest.approx((600 * rates[0] + 200 * rates[1]) / 800)
    assert price.info["updates"] == 800
    assert set(price.audits) == {"qa/x", "code/y"}
