"""Migration opt0004 (the settings ledger) down one step and up again, on a database of its
own: the numbers of operator changes never start again below those checkpoints hold, so a
partition restored after the upgrade still takes a change made then; while the table is
missing the ledger says what to run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from support import own_database

from finops.common import migrations
from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore
from finops.common.log_position import ResumePlan
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.settings_ledger import PostgresSettingsLedger, SettingsLedgerMissing
from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.service_layer.commands import OperatorChange, settle

pytestmark = pytest.mark.integration


@pytest.fixture
async def database(infra) -> AsyncIterator[str]:
    """A database of its own on the test server, at the optimizer's head; dropped afterwards."""
    async with own_database(infra.database_url, "ledger") as url:
        await migrate(migrations.upgrade, url, "head")
        yield url


async def migrate(step: object, url: str, revision: str) -> None:
    """Alembic runs an event loop of its own: in a thread."""
    await asyncio.to_thread(step, url, revision, ["optimizer"])  # type: ignore[arg-type]


def put_budget(limit_usd: float) -> OperatorChange:
    return OperatorChange.put_budget(Budget("b", "team", "search", "day", limit_usd))


async def resume(saved: object, cluster_id: object) -> ResumePlan:
    return ResumePlan("cluster", {})


async def test_numbers_go_on_above_the_checkpointed_ones_across_a_downgrade_and_upgrade(
    database: str,
) -> None:
    conn = await asyncpg.connect(database)
    try:
        ledger = PostgresSettingsLedger(conn, "optimizer")
        store = PostgresCheckpointStore(conn, "optimizer_checkpoints")
        # A partition applied three changes of the budget (through its topic) and saved them.
        engine = OptimizerEngine()
        for limit in (1.0, 2.0, 3.0):
            change = put_budget(limit)
            assert settle(engine, change.numbered(await ledger.record(change)))
        assert engine.operator_seq == {"budget:b": 3}
        await store.save("optimizer:p0", Checkpoint(engine.to_state(), {"learning:0": 3}))

        await migrate(migrations.downgrade, database, "opt0003")
        # While the table is missing, a change and a restore fail, saying what to run.
        with pytest.raises(SettingsLedgerMissing, match="missing: run finops db upgrade"):
            await ledger.record(put_budget(4.0))
        with pytest.raises(SettingsLedgerMissing, match="optimizer_settings"):
            await ledger.latest()

        await migrate(migrations.upgrade, database, "head")
        assert await ledger.record(put_budget(5.0)) == 4  # on from 3, not from 1

        # The partition, loaded by its next owner, takes it: 4 is newer than its 3.
        shards = EngineShards(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            store,
            topic="learning",
            resume=resume,
            name="optimizer",
            new_engine=OptimizerEngine,
            shards_topic="shards",
            alerts_topic="alerts",
            ledger=ledger,
        )
        loaded, offsets, _ = await shards.load_shard(0)
        assert offsets == {"learning:0": 3}
        assert loaded.budget_status("b")["budget"]["limit_usd"] == 5.0
        assert loaded.operator_seq == {"budget:b": 4}
    finally:
        await conn.close()
