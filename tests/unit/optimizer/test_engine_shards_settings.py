"""A deployment switched to partitioned learning keeps the operator's settings: a new
partition's engine starts with the one-worker checkpoint's catalog, objectives and budgets."""

from __future__ import annotations

import json

from finops.common.checkpoints import Checkpoint
from finops.common.log_position import ResumePlan
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine
from finops.optimizer.domain.policy import Objective


class Rows:
    def __init__(self, rows: dict[str, Checkpoint]) -> None:
        self.rows = rows

    async def load(self, name: str) -> Checkpoint | None:
        return self.rows.get(name)

    async def save_at(self, name: str, checkpoint: Checkpoint, position: int | None) -> bool:
        self.rows[name] = Checkpoint(checkpoint.state_dict(), checkpoint.offsets)
        return True


async def resume(saved: object, cluster_id: object) -> ResumePlan:
    return ResumePlan("cluster", {})


def shards(rows: dict[str, Checkpoint]) -> EngineShards:
    return EngineShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Rows(rows),  # type: ignore[arg-type]
        topic="learning",
        resume=resume,
        name="optimizer",
        new_engine=OptimizerEngine,
        shards_topic="shards",
        alerts_topic="alerts",
    )


async def test_a_new_partition_starts_with_the_one_worker_engines_settings():
    before = OptimizerEngine()
    before.add_catalog_arm(ArmSpec("gpt-4.1-nano", "openai"))
    before.add_catalog_arm(ArmSpec("gpt-4o", "openai"))
    before.remove_catalog_arm("gpt-4o|openai|default")
    before.set_objective("summarize", Objective(quality_floor=0.8))
    before.set_budget(Budget("b1", "team", "search", "day", 5.0))
    legacy = Checkpoint(before.to_state(), {"agent.cost.v1:0": 10})
    engine, offsets, cluster_id = await shards({"optimizer": legacy}).load_shard(3)
    assert (offsets, cluster_id) == ({}, None)  # read from the beginning
    assert list(engine.catalog) == ["gpt-4.1-nano|openai|default"]
    assert engine.withdrawn == {"gpt-4o|openai|default"}
    assert engine.objectives()["summarize"]["quality_floor"] == 0.8
    assert engine.has_budget("b1")
    assert engine.analytics.summary()["events"] == 0  # what was learned is learned again


async def test_a_partitions_own_checkpoint_wins_over_the_one_worker_one():
    own = OptimizerEngine()
    own.set_budget(Budget("mine", "team", "t", "day", 1.0))
    rows = {
        "optimizer": Checkpoint(OptimizerEngine().to_state(), {}),
        "optimizer:p3": Checkpoint(own.to_state(), {"learning:3": 42}, 0, "c1"),
    }
    engine, offsets, cluster_id = await shards(rows).load_shard(3)
    assert engine.has_budget("mine")
    assert (offsets, cluster_id) == ({"learning:3": 42}, "c1")


def test_a_partition_counts_an_event_forwarded_twice_as_a_duplicate():
    # a record forwarded by a version that did not say where it read it (no
    # x-optimizer-source), twice: the partition drops it by its id and counts a duplicate
    # (finops_optimizer_events_total said "applied" for both copies); test_redelivered_events
    # has what a forwarder of this version sends
    from types import SimpleNamespace

    from prometheus_client import REGISTRY
    from support import llm_call

    from finops.optimizer.adapters.task_type_forward import EVENT, INPUT_HEADER

    def count(outcome: str) -> float:
        labels = {"topic": "learning", "outcome": outcome}
        return REGISTRY.get_sample_value("finops_optimizer_events_total", labels) or 0.0

    applied, duplicate = count("applied"), count("duplicate")
    record = SimpleNamespace(
        topic="learning",
        value=json.dumps(llm_call(task_type="twice")).encode(),
        headers=[(INPUT_HEADER, EVENT)],
    )
    engine = OptimizerEngine()
    partitions = shards({})
    partitions._apply(engine, record)
    partitions._apply(engine, record)
    assert engine.counted == 1
    assert (count("applied"), count("duplicate")) == (applied + 1, duplicate + 1)
