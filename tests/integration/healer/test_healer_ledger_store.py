"""The healing ledger's checkpoints in PostgreSQL: segments written only when changed, read
back whole; each instance's own checkpoint, the freshest restored; stale ones removed; the
single-row checkpoint of the version before still restores."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.adapters.ledger_store import PostgresLedgerStore, writer_name
from finops.healer.domain.healing_records import AdviceRecord, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.ledger_segments import SegmentIndex
from finops.healer.domain.remedies import Action

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Any) -> AsyncIterator[Any]:
    pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


def ledger_of(advices: int) -> HealingLedger:
    ledger = HealingLedger(pending_index=SegmentIndex(2), chain_index=SegmentIndex(2))
    for n in range(advices):
        ledger.advised(
            AdviceRecord(f"a{n}", ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, n)
        )
    return ledger


async def save(
    store: PostgresLedgerStore, name: str, writer: str, ledger: HealingLedger, offset: int
) -> bool:
    changes = ledger.take_changes().encode()
    return await store.save_changes(name, writer, changes, {"agent.error.v1:0": offset}, "c1")


async def segment_versions(pool: Any, checkpoint: str) -> dict[int, int]:
    """segment -> its row's xmin (the transaction that last wrote it)."""
    rows = await pool.fetch(
        "SELECT segment, xmin::text::bigint AS written FROM healer_ledger_segments"
        " WHERE checkpoint = $1 AND part = 'pending'",
        checkpoint,
    )
    return {row["segment"]: row["written"] for row in rows}


async def test_only_changed_segments_are_written_and_the_ledger_reads_back_whole(
    pool: Any,
) -> None:
    name, store = f"ledger-{uuid.uuid4().hex[:8]}", PostgresLedgerStore(pool)
    ledger = ledger_of(5)  # segments 0, 1, 2
    assert await save(store, name, "w1", ledger, 5)
    before = await segment_versions(pool, writer_name(name, "w1"))
    ledger.healed(Outcome("a3", True, 9.0))  # segment 1 changes, a chain is healed
    assert await save(store, name, "w1", ledger, 6)
    after = await segment_versions(pool, writer_name(name, "w1"))
    assert sorted(after) == [0, 1, 2]
    assert [after[s] == before[s] for s in (0, 1, 2)] == [True, False, True]
    loaded = await store.load(name)
    assert loaded is not None and loaded.offsets == {"agent.error.v1:0": 6}
    assert loaded.state_dict() == json.loads(json.dumps(ledger.to_state()))


async def test_an_instance_restores_the_checkpoint_saved_last_by_any_instance(pool: Any) -> None:
    name, store = f"ledger-{uuid.uuid4().hex[:8]}", PostgresLedgerStore(pool)
    assert await save(store, name, "first", ledger_of(3), 3)
    assert await save(store, name, "second", ledger_of(4), 4)
    loaded = await store.load(name)
    assert loaded is not None and loaded.offsets == {"agent.error.v1:0": 4}
    assert [row["advice_id"] for row in loaded.state_dict()["pending"]] == [
        "a0",
        "a1",
        "a2",
        "a3",
    ]


async def test_a_stale_checkpoint_is_removed_and_its_writer_then_saves_whole(pool: Any) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    store = PostgresLedgerStore(pool, stale_after_s=0.0)  # anything saved before is stale
    idle = ledger_of(3)
    assert await save(store, name, "idle", idle, 3)
    assert await save(store, name, "busy", ledger_of(4), 4)  # removes the idle one's
    names = await pool.fetch(
        "SELECT name FROM healer_checkpoints WHERE starts_with(name, $1)", name
    )
    assert [row["name"] for row in names] == [writer_name(name, "busy")]
    assert await segment_versions(pool, writer_name(name, "idle")) == {}
    idle.advised(AdviceRecord("a9", ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, 9))
    partial = idle.take_changes()
    assert not partial.complete
    assert not await store.save_changes(
        name, "idle", partial.encode(), {"agent.error.v1:0": 9}, "c1"
    )  # refused, nothing written: its older segments are gone
    assert await segment_versions(pool, writer_name(name, "idle")) == {}
    idle.mark_all_changed()
    assert await save(store, name, "idle", idle, 9)
    assert sorted(await segment_versions(pool, writer_name(name, "idle"))) == [0, 1]


async def test_the_single_row_checkpoint_of_the_version_before_restores(pool: Any) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    ledger = ledger_of(3)
    ledger.healed(Outcome("a1", True, 2.0))
    whole = Checkpoint(ledger.to_state(), {"agent.cost.v1:0": 7}, cluster_id="c1")
    await PostgresCheckpointStore(pool, "healer_checkpoints").save(name, whole)
    loaded = await PostgresLedgerStore(pool).load(name)
    assert loaded is not None and loaded.offsets == {"agent.cost.v1:0": 7}
    restored = HealingLedger.from_state(loaded.state_dict())
    assert restored.to_state() == ledger.to_state()


async def checkpoint_names(pool: Any, name: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT name FROM healer_checkpoints WHERE starts_with(name, $1) ORDER BY name", name
    )
    return [row["name"] for row in rows]


async def test_a_restart_removes_the_row_it_restored_once_it_saved_the_whole_ledger(
    pool: Any,
) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    assert await save(PostgresLedgerStore(pool), name, "before", ledger_of(3), 3)
    restarted = PostgresLedgerStore(pool)
    loaded = await restarted.load(name)
    assert loaded is not None
    ledger = HealingLedger.from_state(loaded.state_dict())
    assert await save(restarted, name, "after", ledger, 3)
    assert await checkpoint_names(pool, name) == [writer_name(name, "after")]
    assert await segment_versions(pool, writer_name(name, "before")) == {}


async def test_a_restored_row_its_writer_saved_since_is_kept(pool: Any) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    running, running_ledger = PostgresLedgerStore(pool), ledger_of(3)
    assert await save(running, name, "running", running_ledger, 3)
    started = PostgresLedgerStore(pool)
    loaded = await started.load(name)
    assert loaded is not None
    running_ledger.healed(Outcome("a1", True, 5.0))
    assert await save(running, name, "running", running_ledger, 4)  # it still runs
    assert await save(started, name, "started", HealingLedger.from_state(loaded.state_dict()), 3)
    assert await checkpoint_names(pool, name) == [
        writer_name(name, "running"),
        writer_name(name, "started"),
    ]


async def test_a_stale_row_being_saved_is_left_to_its_writer(pool: Any) -> None:
    # Two instances saving at once, each removing the other's stale row, deadlocked: a save
    # now skips the rows another transaction holds.
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    store = PostgresLedgerStore(pool, stale_after_s=0.0)
    assert await save(store, name, "other", ledger_of(2), 2)
    async with pool.acquire() as other, other.transaction():
        await other.execute(  # the other instance, in the middle of its own save
            "SELECT 1 FROM healer_checkpoints WHERE name = $1 FOR UPDATE",
            writer_name(name, "other"),
        )
        saved = await asyncio.wait_for(save(store, name, "this", ledger_of(3), 3), 30)
    assert saved
    assert await checkpoint_names(pool, name) == [
        writer_name(name, "other"),
        writer_name(name, "this"),
    ]
