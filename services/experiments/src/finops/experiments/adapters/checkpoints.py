"""Checkpoints: the analysis state and the offsets it covers, saved in one row.

Restoring a checkpoint and seeking to its offsets replays exactly the events the state has
not seen, so a restart neither loses results nor counts an event twice.

Each instance checkpoints the partitions it owns, one row per partition. With a partition's
row go the snapshots of its experiments (their statistics without the deduplication ids), in
the same transaction: any instance answers results for any experiment from them, and they
never show an event the checkpoint could lose.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from finops.common import checkpoints
from finops.common.checkpoints import Checkpoint


class PostgresCheckpointStore:
    """``experiments_checkpoints``: the common store's rows, saved with a position guard and
    with the experiments' snapshots."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.rows = checkpoints.PostgresCheckpointStore(pool, "experiments_checkpoints")

    async def load(self, name: str) -> Checkpoint | None:
        return await self.rows.load(name)

    async def save(
        self,
        name: str,
        checkpoint: Checkpoint,
        snapshots: dict[str, dict[str, Any]] | None = None,
        *,
        position: int | None = None,
    ) -> bool:
        """Save the checkpoint, and ``snapshots`` (experiment id -> snapshot) with it.

        With a ``position`` (a partition's next offset) the row is not replaced by one behind
        it: an instance that lost its partition without knowing it (its session expired
        under load) cannot overwrite its successor's checkpoint with an older one. False when
        the save was refused for that reason.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.rows.save_at(name, checkpoint, position, conn=conn):
                return False
            if snapshots:
                await conn.executemany(
                    """
                    INSERT INTO experiment_snapshots (experiment_id, checkpoint, snapshot)
                    VALUES ($1, $2, $3::jsonb)
                    ON CONFLICT (experiment_id) DO UPDATE
                      SET checkpoint = EXCLUDED.checkpoint, snapshot = EXCLUDED.snapshot,
                          saved_at = now()
                    """,
                    [(eid, name, json.dumps(snap)) for eid, snap in snapshots.items()],
                )
        return True

    async def snapshot(self, experiment_id: str) -> dict[str, Any] | None:
        """The last saved snapshot of an experiment, if any."""
        raw = await self.pool.fetchval(
            "SELECT snapshot FROM experiment_snapshots WHERE experiment_id = $1", experiment_id
        )
        return None if raw is None else dict(json.loads(raw))
