"""The auth schema: upgrade and downgrade through Alembic on a database of its own."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from finops.common import migrations

pytestmark = pytest.mark.integration

TABLES = {"users", "refresh_tokens", "api_keys"}


async def tables(conn) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows} & TABLES


async def migrate(direction: str, url: str, revision: str) -> None:
    # Alembic's env runs its own event loop: keep it off the test's loop.
    step = migrations.upgrade if direction == "up" else migrations.downgrade
    await asyncio.to_thread(step, url, revision, ["auth"])


async def test_upgrade_and_downgrade_both_work(scratch_database):
    url = scratch_database
    await migrate("up", url, "head")
    conn = await asyncpg.connect(url)
    try:
        assert await tables(conn) == TABLES
        version = await conn.fetchval("SELECT version_num FROM alembic_version_auth")
        assert version == "0005_users_teams"
        indexes = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'refresh_tokens_expires_at_idx'"
        )
        assert indexes == 1

        await migrate("down", url, "0004_users_insert_updated_at")
        columns = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'users' AND column_name = 'teams'"
        )
        assert columns == 0
        await migrate("down", url, "0001_users")
        assert await tables(conn) == {"users"}
        await migrate("down", url, "base")
        assert await tables(conn) == set()
        assert await conn.fetchval("SELECT count(*) FROM alembic_version_auth") == 0
        functions = await conn.fetchval(
            "SELECT count(*) FROM pg_proc"
            " WHERE proname IN ('auth_touch_updated_at', 'auth_insert_updated_at')"
        )
        assert functions == 0

        await migrate("up", url, "head")
        assert await tables(conn) == TABLES
    finally:
        await conn.close()


async def test_the_users_table_enforces_its_rules(infra):
    conn = await asyncpg.connect(infra.database_url)
    name = f"m{uuid.uuid4().hex[:10]}"
    try:
        async with conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO users (username, email, hashed_password) VALUES ($1, $2, 'h')"
                " RETURNING id",
                name,
                f"{name}@Example.com",
            )
            assert isinstance(user_id, uuid.UUID)
            row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
            assert row["role"] == "agent" and row["is_active"] is True
            assert row["teams"] is None  # not bound: any team
            assert row["created_at"] == row["updated_at"]

            await conn.execute("UPDATE users SET role = 'operator' WHERE id = $1", user_id)
            updated = await conn.fetchval("SELECT updated_at FROM users WHERE id = $1", user_id)
            assert updated > row["updated_at"]  # kept current by the trigger

            with pytest.raises(asyncpg.UniqueViolationError) as duplicate:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO users (username, email, hashed_password) VALUES ($1, $2, 'h')",
                        name + "x",
                        f"{name.upper()}@EXAMPLE.COM",
                    )
            assert duplicate.value.constraint_name == "users_email_lower_key"
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute("UPDATE users SET role = 'root' WHERE id = $1", user_id)
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE users SET teams = $2 WHERE id = $1",
                        user_id,
                        [f"team-{i}" for i in range(33)],
                    )
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE users SET teams = ARRAY['ops', NULL] WHERE id = $1", user_id
                    )
            plan = await conn.fetchval(
                "EXPLAIN SELECT * FROM users WHERE lower(email) = lower('a@b.c')"
            )
            assert "users_email_lower_key" in plan or "Seq Scan" in plan
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()


class _Rollback(Exception):
    """Leaves the shared database as it was."""
