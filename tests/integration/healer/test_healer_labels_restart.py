"""Labels are the classifier's state: they survive a restart and reach every instance."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from healer_helpers import auth, healer, kind_of, settings_for
from support import own_database, wait_until

from finops.common import migrations
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError
from finops.healer.adapters.labels import LabelSync, NewLabel, PostgresLabelStore
from finops.healer.domain.classify import ErrorClassifier

pytestmark = pytest.mark.integration


async def test_labels_survive_a_restart(infra: Any, tmp_path: Any) -> None:
    # words of its own: the labels table is shared, and test_healer_labels_api asserts that
    # its own "gateway … swallowed the completion halfway" is not known before it teaches it
    quirk = f"relay {uuid.uuid4().hex[:8]} truncated the stream midway"
    label = {"message": quirk, "kind": "server_error", "status": 400}
    async with healer(settings_for(infra, tmp_path / "a")) as first:
        taught = await first.post("/api/healing/labels", json=label, headers=auth())
        assert taught.status_code == 201, taught.text
    async with healer(settings_for(infra, tmp_path / "b")) as restarted:
        assert kind_of(restarted, quirk.upper(), 400) is ErrorKind.SERVER_ERROR


async def test_a_label_stored_by_one_instance_reaches_another(infra_env: Any) -> None:
    """Two instances share the labels table: each learns what the other stored."""
    pool = await asyncpg.create_pool(infra_env.database_url, min_size=1, max_size=2)
    try:
        one = LabelSync(PostgresLabelStore(pool), ErrorClassifier())
        other = LabelSync(PostgresLabelStore(pool), ErrorClassifier())
        await one.catch_up()
        await other.catch_up()
        quirk = f"shard {uuid.uuid4().hex[:8]} evicted the session"
        stop = asyncio.Event()
        refresh = asyncio.create_task(other.run(stop, interval_s=0.1))
        await one.add([NewLabel(quirk, ErrorKind.OVERLOADED)], created_by="op")
        await wait_until(
            lambda: (
                other.classifier.classify(ProviderError(message=quirk)).kind is ErrorKind.OVERLOADED
            ),
            10,
            "the other instance learned the label",
        )
        stop.set()
        await refresh
        assert one.last_id == other.last_id
    finally:
        await pool.close()


async def test_the_healer_migrations_upgrade_and_downgrade(infra: Any) -> None:
    query = (
        "SELECT count(*) FROM pg_tables"
        " WHERE tablename IN"
        " ('healer_error_labels', 'healer_checkpoints', 'healer_ledger_segments')"
    )
    async with own_database(infra.database_url, "healer_scratch") as url:
        # Alembic's env runs its own event loop: keep it off the test's loop.
        await asyncio.to_thread(migrations.upgrade, url, "head", ["healer"])
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval(query) == 3
            assert await conn.fetchval("SELECT version_num FROM alembic_version_healer") == (
                "heal0005"
            )
            await asyncio.to_thread(migrations.downgrade, url, "base", ["healer"])
            assert await conn.fetchval(query) == 0
        finally:
            await conn.close()


class CommitsWhenTold:
    """A pool whose transactions stop just before they commit until ``go`` is set (another
    healer instance's add, slow to commit); ``waiting`` is set once one stops there."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn:
            yield _CommitsWhenTold(conn, self)


class _CommitsWhenTold:
    def __init__(self, conn: Any, pool: CommitsWhenTold) -> None:
        self._conn, self._pool = conn, pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._conn.transaction():
            yield
            self._pool.waiting.set()
            await self._pool.go.wait()


class Taught:
    """A classifier that only notes the messages it is taught."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def teach(self, message: str, kind: ErrorKind) -> None:
        self.messages.append(message)


async def test_a_label_that_commits_after_a_later_one_is_still_learned(infra_env: Any) -> None:
    """Two instances add labels at once; the one that took the lower id commits last. Another
    instance that polled between the two commits still learns both."""
    pool = await asyncpg.create_pool(infra_env.database_url, min_size=1, max_size=4)
    slow_pool = CommitsWhenTold(pool)
    tag = uuid.uuid4().hex[:8]
    # words no other test classifies: the labels table, and so what instances learn, is shared
    slow_label, fast_label = f"zebrafish {tag} marmalade", f"wombat {tag} tangerine"
    taught = Taught()
    reader = LabelSync(PostgresLabelStore(pool), taught)  # type: ignore[arg-type]
    slow = fast = None
    try:
        await reader.catch_up()
        slow = asyncio.create_task(
            PostgresLabelStore(slow_pool).add([NewLabel(slow_label, ErrorKind.TIMEOUT)], "a")
        )
        await slow_pool.waiting.wait()  # its id taken, not committed
        fast = asyncio.create_task(
            PostgresLabelStore(pool).add([NewLabel(fast_label, ErrorKind.TIMEOUT)], "b")
        )

        async def fast_done_or_waiting() -> bool:
            if fast.done():
                return True
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_locks"
                " WHERE locktype = 'advisory' AND classid = 7401 AND NOT granted"
            )
            return bool(waiting)

        await wait_until(fast_done_or_waiting, 10, "the second add to commit or wait its turn")
        await reader.catch_up()  # between the two commits
        slow_pool.go.set()
        await slow
        await fast
        await reader.catch_up()
        assert [m for m in taught.messages if tag in m] == [slow_label, fast_label]
    finally:
        slow_pool.go.set()
        for task in (slow, fast):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        await pool.close()
