"""The ids of the fleet's budget alerts raised live in partition 0's checkpoint: its next owner
restores them (issue 14's known limit: they were in memory and raised again after a move)."""

from __future__ import annotations

from finops.common.checkpoints import Checkpoint
from finops.common.log_position import ResumePlan
from finops.optimizer.adapters.engine_shards import (
    BUDGET_ALERTS_PART,
    BUDGET_ALERTS_PARTITION,
    EngineShards,
)
from finops.optimizer.domain.engine import OptimizerEngine


class Rows:
    """Checkpoint rows in memory, saved and loaded as PostgresCheckpointStore does."""

    def __init__(self) -> None:
        self.rows: dict[str, Checkpoint] = {}

    async def load(self, name: str) -> Checkpoint | None:
        return self.rows.get(name)

    async def save_at(self, name: str, checkpoint: Checkpoint, position: int | None) -> bool:
        self.rows[name] = Checkpoint(checkpoint.state_dict(), checkpoint.offsets)
        return True


async def resume(saved: object, cluster_id: object) -> ResumePlan:
    return ResumePlan("cluster", {})


def owner(rows: Rows) -> EngineShards:
    return EngineShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        rows,  # type: ignore[arg-type]
        topic="learning",
        resume=resume,
        name="optimizer",
        new_engine=OptimizerEngine,
        shards_topic="shards",
        alerts_topic="alerts",
    )


async def test_the_next_owner_of_partition_0_restores_the_budget_alert_ids_raised():
    rows = Rows()
    first = owner(rows)
    engine, _, _ = await first.load_shard(BUDGET_ALERTS_PARTITION)
    first.budget_alerts_raised.add(11)
    first.budget_alerts_raised.add(22)
    assert await first.save_shard(BUDGET_ALERTS_PARTITION, engine, {})

    second = owner(rows)
    await second.load_shard(BUDGET_ALERTS_PARTITION)
    assert (11 in second.budget_alerts_raised, 22 in second.budget_alerts_raised) == (True, True)
    assert 33 not in second.budget_alerts_raised
    assert len(second.budget_alerts_raised) == 2


async def test_only_partition_0_checkpoints_the_ids_and_loading_another_keeps_them():
    rows = Rows()
    shards = owner(rows)
    zero, _, _ = await shards.load_shard(BUDGET_ALERTS_PARTITION)
    shards.budget_alerts_raised.add(11)
    three, _, _ = await shards.load_shard(3)
    assert await shards.save_shard(3, three, {})
    assert await shards.save_shard(BUDGET_ALERTS_PARTITION, zero, {})
    assert BUDGET_ALERTS_PART not in rows.rows["optimizer:p3"].state_dict()
    assert BUDGET_ALERTS_PART in rows.rows["optimizer:p0"].state_dict()
    assert 11 in shards.budget_alerts_raised


async def test_a_checkpoint_from_before_the_ids_were_kept_starts_with_none_raised():
    rows = Rows()
    rows.rows["optimizer:p0"] = Checkpoint(OptimizerEngine().to_state(), {"learning:0": 5})
    shards = owner(rows)
    shards.budget_alerts_raised.add(11)  # left from an earlier ownership
    _, offsets, _ = await shards.load_shard(BUDGET_ALERTS_PARTITION)
    assert offsets == {"learning:0": 5}
    assert len(shards.budget_alerts_raised) == 0
