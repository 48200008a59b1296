"""A FleetView of per-partition engines answers like one engine fed every event (issue 14)."""

from __future__ import annotations

import json
import random

import pytest
from support import llm_call

from finops.common.events import Event
from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine
from finops.optimizer.domain.fleet_view import FleetView, partition_of_task
from finops.optimizer.service_layer.commands import OperatorChange

PARTITIONS = 6
TASKS = [f"family-{i % 4}/task-{i}" for i in range(10)]
MODELS = [("gpt-4o", 0.92), ("gpt-4o-mini", 0.85)]


def events(n: int) -> list[Event]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        model, quality = MODELS[i % 2]
        body = llm_call(
            f"agent-{i % 4}",
            team=f"team-{i % 3}",
            task_type=TASKS[i % len(TASKS)],
            model=model,
            cost_usd=0.001 * (1 + i % 2),
            quality=float(rng.random() < quality),
        )
        out.append(Event.from_kafka(json.dumps(body).encode()))
    return out


def published(engine: OptimizerEngine) -> OptimizerEngine:
    """The engine as a replica reads it: its view state, serialised and restored."""
    return OptimizerEngine.from_state(
        json.loads(json.dumps(dict((name, build()) for name, build in engine.view_parts())))
    )


@pytest.fixture(scope="module")
def fleet() -> tuple[OptimizerEngine, dict[int, OptimizerEngine]]:
    whole = OptimizerEngine()
    parts: dict[int, OptimizerEngine] = {}
    budget = Budget("b1", "team", "team-0", "month", 0.05)
    whole.set_budget(budget)
    for event in events(600):
        whole.observe(event)
        partition = partition_of_task(event.data.task_type, PARTITIONS)
        if partition not in parts:
            parts[partition] = OptimizerEngine()
            parts[partition].set_budget(budget)
        parts[partition].observe(event)
    return whole, parts


def test_statistics_and_budgets_are_the_fleets(fleet):
    whole, parts = fleet
    assert len(parts) > 1
    view = FleetView({p: published(e) for p, e in parts.items()}, PARTITIONS, OptimizerEngine())
    assert view.analytics.summary()["events"] == whole.analytics.summary()["events"] == 600
    for dimension in ("agent", "team", "task_type", "model"):
        assert view.analytics.totals(dimension) == whole.analytics.totals(dimension)
    assert view.budgets.status("b1")["spend_usd"] == pytest.approx(
        whole.budgets.status("b1")["spend_usd"]
    )


def test_each_task_type_is_answered_by_its_own_partitions_engine(fleet):
    whole, parts = fleet
    view = FleetView({p: published(e) for p, e in parts.items()}, PARTITIONS, OptimizerEngine())
    assert sorted(view.tasks()) == sorted(TASKS) == sorted(whole.tasks())
    for task in TASKS:
        for arm, belief in view.tasks()[task]["arms"].items():
            one = whole.tasks()[task]["arms"][arm]
            exact = ("observations", "cost_usd", "p95_latency_ms", "drifts")
            assert {k: belief[k] for k in exact} == {k: one[k] for k in exact}, (task, arm)
            # the family priors are refit on a schedule counted by each partition's updates
            assert belief["quality"] == pytest.approx(one["quality"], abs=0.02), (task, arm)
        rec = view.recommend(task, rng=random.Random(1))
        assert rec.arm.model in {m for m, _ in MODELS}
    assert view.policy_status()["updates"] == whole.policy_status()["updates"]


def test_an_operator_change_applied_to_a_view_reaches_every_partitions_engine(fleet):
    _, parts = fleet
    view = FleetView({p: published(e) for p, e in parts.items()}, PARTITIONS, OptimizerEngine())
    change = OperatorChange.from_json(
        OperatorChange.offer_arm(ArmSpec("gpt-4.1-nano", "openai")).to_json()
    )
    assert change.apply(view) == ArmSpec("gpt-4.1-nano", "openai")
    assert "gpt-4.1-nano|openai|default" in view.catalog
    for engine in view.engines.values():
        assert "gpt-4.1-nano|openai|default" in engine.catalog
    put = OperatorChange.put_budget(Budget("b2", "agent", "agent-1", "day", 1.0))
    assert OperatorChange.from_json(put.to_json()).apply(view)["budget"]["id"] == "b2"
    assert view.has_budget("b2")
