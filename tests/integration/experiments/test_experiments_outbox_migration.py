"""Migrations exp0004 (the announcement outbox), exp0005 (decisions in it) and exp0006 (an
operator's stop's counts) on a database of its own: rows the previous version writes count as
announced, and a downgrade is refused while a start, a stop or a decision waits."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from support import own_database

from finops.common import migrations

pytestmark = pytest.mark.integration

WAITING = (
    "INSERT INTO experiment_audit (experiment_id, actor, action, details, announce_on, "
    "announced_at) VALUES ('e1', 'ops', 'start', '{\"from\": \"draft\", \"to\": \"running\"}', "
    "'finops.experiments.v1', NULL)"
)


@pytest.fixture
async def database(infra):
    """A database of its own on the test server, dropped afterwards."""
    async with own_database(infra.database_url, "outbox") as url:
        yield url


async def up(url: str, revision: str) -> None:
    """Upgrade the experiments' schema (alembic runs an event loop of its own: in a thread)."""
    await asyncio.to_thread(migrations.upgrade, url, revision, ["experiments"])


async def down(url: str, revision: str) -> None:
    await asyncio.to_thread(migrations.downgrade, url, revision, ["experiments"])


async def _experiment(conn: asyncpg.Connection, status: str) -> None:
    """Experiment e1, in ``status``, for the audit rows to name."""
    await conn.execute(
        "INSERT INTO experiments (id, name, task_type, definition, status, salt, created_by) "
        "VALUES ('e1', 'e1', 't', '{}', $1, 's', 'ops')",
        status,
    )


async def _columns(url: str, table: str = "experiment_audit") -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
        )
        return {r["column_name"] for r in rows}
    finally:
        await conn.close()


async def test_the_outbox_columns_come_and_go_and_a_waiting_change_blocks_the_downgrade(database):
    await up(database, "exp0003")
    conn = await asyncpg.connect(database)
    try:
        await _experiment(conn, "draft")
        await conn.execute(
            "INSERT INTO experiment_audit (experiment_id, actor, action, details) "
            "VALUES ('e1', 'ops', 'create', '{}')"
        )
        await up(database, "exp0004")
        # the row written before, and one the previous version writes now, count as announced
        await conn.execute(
            "INSERT INTO experiment_audit (experiment_id, actor, action, details) "
            "VALUES ('e1', 'ops', 'start', '{\"from\": \"draft\", \"to\": \"running\"}')"
        )
        pending = "SELECT count(*) FROM experiment_audit WHERE announced_at IS NULL"
        assert await conn.fetchval(pending) == 0
        await conn.execute(WAITING)
        with pytest.raises(RuntimeError, match="wait to be announced"):
            await down(database, "exp0003")
        assert {"announced_at", "announce_on"} <= await _columns(database)
        await conn.execute("UPDATE experiment_audit SET announced_at = now()")
    finally:
        await conn.close()
    await down(database, "exp0003")
    assert not {"announced_at", "announce_on"} & await _columns(database)


async def test_a_decision_waiting_in_the_outbox_blocks_the_downgrade_past_exp0005(database):
    """The code of exp0004 announces no decision: one left waiting would never go out."""
    await up(database, "exp0005")
    conn = await asyncpg.connect(database)
    try:
        await _experiment(conn, "decided")
        await conn.execute(
            "INSERT INTO experiment_audit (experiment_id, actor, action, details, announce_on, "
            "announced_at) VALUES ('e1', 'analysis', 'decided', '{}', 'finops.experiments.v1', "
            "NULL)"
        )
        with pytest.raises(RuntimeError, match="decisions of experiments wait to be announced"):
            await down(database, "exp0004")
        await conn.execute("UPDATE experiment_audit SET announced_at = now()")
    finally:
        await conn.close()
    await down(database, "exp0004")
    assert {"announced_at", "announce_on"} <= await _columns(database)


async def test_the_stop_counts_come_with_exp0006_and_go_with_its_downgrade(database):
    await up(database, "exp0005")
    assert "stop_counts" not in await _columns(database, "experiments")
    await up(database, "exp0006")
    assert "stop_counts" in await _columns(database, "experiments")
    await down(database, "exp0005")
    assert "stop_counts" not in await _columns(database, "experiments")
