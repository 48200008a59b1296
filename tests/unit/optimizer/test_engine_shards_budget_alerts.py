"""The ids of the fleet's budget alerts raised live in partition 0's checkpoint: its next owner
restores them (issue 14's known limit: they were in memory and raised again after a move)."""

from __future__ import annotations

from test_engine_shards_settings import shards

from finops.common.checkpoints import Checkpoint
from finops.optimizer.adapters.engine_shards import BUDGET_ALERTS_PART, BUDGET_ALERTS_PARTITION
from finops.optimizer.domain.engine import OptimizerEngine


async def test_the_next_owner_of_partition_0_restores_the_budget_alert_ids_raised():
    rows: dict[str, Checkpoint] = {}
    first = shards(rows)
    engine, _, _ = await first.load_shard(BUDGET_ALERTS_PARTITION)
    first.budget_alerts_raised.add(11)
    first.budget_alerts_raised.add(22)
    assert await first.save_shard(BUDGET_ALERTS_PARTITION, engine, {})

    second = shards(rows)
    await second.load_shard(BUDGET_ALERTS_PARTITION)
    assert (11 in second.budget_alerts_raised, 22 in second.budget_alerts_raised) == (True, True)
    assert 33 not in second.budget_alerts_raised
    assert len(second.budget_alerts_raised) == 2


async def test_only_partition_0_checkpoints_the_ids_and_loading_another_keeps_them():
    rows: dict[str, Checkpoint] = {}
    owner = shards(rows)
    zero, _, _ = await owner.load_shard(BUDGET_ALERTS_PARTITION)
    owner.budget_alerts_raised.add(11)
    three, _, _ = await owner.load_shard(3)
    assert await owner.save_shard(3, three, {})
    assert await owner.save_shard(BUDGET_ALERTS_PARTITION, zero, {})
    assert BUDGET_ALERTS_PART not in rows["optimizer:p3"].state_dict()
    assert BUDGET_ALERTS_PART in rows["optimizer:p0"].state_dict()
    assert 11 in owner.budget_alerts_raised


async def test_a_checkpoint_from_before_the_ids_were_kept_starts_with_none_raised():
    rows = {"optimizer:p0": Checkpoint(OptimizerEngine().to_state(), {"learning:0": 5})}
    owner = shards(rows)
    owner.budget_alerts_raised.add(11)  # left from an earlier ownership
    _, offsets, _ = await owner.load_shard(BUDGET_ALERTS_PARTITION)
    assert offsets == {"learning:0": 5}
    assert len(owner.budget_alerts_raised) == 0
