"""The healing ledger's checkpoints in PostgreSQL, written segment by segment.

A checkpoint is a row of ``healer_checkpoints`` (the ledger's small parts and the offsets they
cover, ``segmented``) and the rows of ``healer_ledger_segments`` that hold its pending advices
and healed chains, :data:`~finops.healer.domain.ledger_segments.SEGMENT_SIZE` entries a row.
A save writes the small parts and only the segments changed since the last save, in one
transaction with the offsets: what a checkpoint holds is always one moment of the ledger.

Every healer instance reads the whole log and keeps a ledger of its own, so each one saves
under a name of its own, ``<name>@<writer>`` (``writer``: new each start). At start-up an
instance restores the most recently saved checkpoint of ``<name>``: any instance's, or the
single-row checkpoint named ``<name>`` that versions before this one saved. Its first save
then writes every segment under its own name, and removes the row it restored unless that
row's writer saved it again since (a restart leaves no copy behind). A checkpoint nobody
saved for :data:`STALE_AFTER_S` is removed by the next save of another instance; an instance
whose own checkpoint was removed that way (it had nothing to save for that long) writes all
of it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from typing import Any, Protocol

import asyncpg

from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore
from finops.healer.domain.ledger_checkpoint import HEALED_CHAINS, PENDING, EncodedChanges

log = logging.getLogger(__name__)

#: a checkpoint of another instance saved longer ago than this is removed (seconds)
STALE_AFTER_S = 24 * 3600.0


class LedgerStore(Protocol):
    async def load(self, name: str) -> Checkpoint | None: ...

    async def save_changes(
        self,
        name: str,
        writer: str,
        changes: EncodedChanges,
        offsets: dict[str, int],
        cluster_id: str | None,
    ) -> bool: ...


def writer_name(name: str, writer: str) -> str:
    """The checkpoint row one instance saves its ledger under."""
    return f"{name}@{writer}"


class PostgresLedgerStore:
    """Ledger checkpoints in ``healer_checkpoints`` and ``healer_ledger_segments``."""

    def __init__(self, pool: Any, *, stale_after_s: float = STALE_AFTER_S) -> None:
        self.pool = pool
        self.stale_after_s = stale_after_s
        #: the row :meth:`load` restored and when it was saved: once this instance has saved
        #: the whole ledger, that row is removed unless its writer has saved since
        self.restored: tuple[str, Any] | None = None

    async def load(self, name: str) -> Checkpoint | None:
        """The most recently saved checkpoint of ``name``, its segments put back in place:
        the whole ledger's state, as :meth:`HealingLedger.from_state` reads it."""
        try:
            return await self._load(name)
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError) as exc:
            # A schema taken back below heal0005 (``finops db downgrade``): start from the
            # single-row checkpoint that version saved; the first save then fails and ends
            # the process, as every intake does on a schema behind its version.
            log.warning(
                "healer checkpoints are not segmented in this schema (finops db upgrade)",
                extra={"error": repr(exc)},
            )
            return await PostgresCheckpointStore(self.pool, "healer_checkpoints").load(name)

    async def _load(self, name: str) -> Checkpoint | None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(
                """
                SELECT name, state, offsets, events, cluster_id, segmented, saved_at
                FROM healer_checkpoints
                WHERE name = $1 OR starts_with(name, $1 || '@')
                ORDER BY saved_at DESC, name LIMIT 1
                """,
                name,
            )
            if row is None:
                return None
            segments = []
            if row["segmented"]:
                segments = await conn.fetch(
                    "SELECT part, entries FROM healer_ledger_segments"
                    " WHERE checkpoint = $1 ORDER BY part, segment",
                    row["name"],
                )
        state = await asyncio.to_thread(_assemble, row["state"], segments, row["segmented"])
        self.restored = (row["name"], row["saved_at"])
        offsets = dict(json.loads(row["offsets"]))
        return Checkpoint(state, offsets, row["events"], row["cluster_id"])

    async def save_changes(
        self,
        name: str,
        writer: str,
        changes: EncodedChanges,
        offsets: dict[str, int],
        cluster_id: str | None,
    ) -> bool:
        """Save ``changes`` under ``<name>@<writer>``; False, with nothing written, when they
        are not complete and that checkpoint is gone (its segments went with it)."""
        own = writer_name(name, writer)
        small, segments = await asyncio.to_thread(_compress, changes)
        async with self.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchval(
                "SELECT true FROM healer_checkpoints WHERE name = $1 FOR UPDATE", own
            )
            if not held and not changes.complete:
                return False
            await conn.execute(
                """
                INSERT INTO healer_checkpoints
                  (name, state, offsets, events, cluster_id, segmented, saved_at)
                VALUES ($1, $2, $3::jsonb, 0, $4, true, now())
                ON CONFLICT (name) DO UPDATE
                  SET state = EXCLUDED.state, offsets = EXCLUDED.offsets,
                      cluster_id = EXCLUDED.cluster_id, segmented = true, saved_at = now()
                """,
                own,
                small,
                json.dumps(offsets),
                cluster_id,
            )
            await _write_segments(conn, own, segments)
            await self._remove_stale(conn, name, own)
            if changes.complete and self.restored is not None:
                await _remove_if_unsaved_since(conn, *self.restored, own)
        if changes.complete:
            self.restored = None
        return True

    async def _remove_stale(self, conn: Any, name: str, own: str) -> None:
        await _remove_checkpoints(
            conn,
            "(name = $1 OR starts_with(name, $1 || '@')) AND name <> $2"
            " AND saved_at < now() - make_interval(secs => $3)",
            name,
            own,
            self.stale_after_s,
        )


async def _remove_if_unsaved_since(conn: Any, restored: str, saved_at: Any, own: str) -> None:
    """Remove the row this instance restored once it saved the whole ledger itself, unless
    its writer saved since (then it runs, and keeps it): a restart leaves no copy behind."""
    if restored != own:
        await _remove_checkpoints(conn, "name = $1 AND saved_at = $2", restored, saved_at)


async def _remove_checkpoints(conn: Any, condition: str, *args: Any) -> None:
    """Remove the ledger checkpoints matching ``condition``, with their segments.

    Rows another save holds are left (SKIP LOCKED): a row being saved is in use, and two
    instances each removing the other's row while saving their own would deadlock.
    """
    await conn.execute(
        f"""
        WITH gone AS (
          DELETE FROM healer_checkpoints WHERE name IN (
            SELECT name FROM healer_checkpoints WHERE {condition} FOR UPDATE SKIP LOCKED
          )
          RETURNING name
        )
        DELETE FROM healer_ledger_segments WHERE checkpoint IN (SELECT name FROM gone)
        """,  # noqa: S608 -- the condition is one of this module's constants
        *args,
    )


async def _write_segments(
    conn: Any, own: str, segments: list[tuple[str, int, bytes | None]]
) -> None:
    written = [(own, part, segment, blob) for part, segment, blob in segments if blob]
    removed = [(own, part, segment) for part, segment, blob in segments if blob is None]
    if written:
        await conn.executemany(
            """
            INSERT INTO healer_ledger_segments (checkpoint, part, segment, entries)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (checkpoint, part, segment) DO UPDATE SET entries = EXCLUDED.entries
            """,
            written,
        )
    if removed:
        await conn.executemany(
            "DELETE FROM healer_ledger_segments"
            " WHERE checkpoint = $1 AND part = $2 AND segment = $3",
            removed,
        )


def _compress(changes: EncodedChanges) -> tuple[bytes, list[tuple[str, int, bytes | None]]]:
    return zlib.compress(changes.small, 1), [
        (s.part, s.segment, zlib.compress(s.text, 1) if s.text is not None else None)
        for s in changes.segments
    ]


def _assemble(small: bytes, segments: list[Any], segmented: bool) -> dict[str, Any]:
    state = dict(json.loads(zlib.decompress(small)))
    if not segmented:  # the whole ledger in one row, as versions before this one saved it
        return state
    parts: dict[str, list[Any]] = {PENDING: [], HEALED_CHAINS: []}
    for row in segments:
        parts[row["part"]].extend(json.loads(zlib.decompress(row["entries"])))
    return {**state, **parts}
