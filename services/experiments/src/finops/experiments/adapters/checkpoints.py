"""Checkpoints: the analysis state and the offsets it covers, saved in one row.

Restoring a checkpoint and seeking to its offsets replays exactly the events the state has
not seen, so a restart neither loses results nor counts an event twice.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, Any]
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    events: int
    cluster_id: str | None = None  # the broker cluster the offsets were read from


class PostgresCheckpointStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, name: str) -> Checkpoint | None:
        row = await self.pool.fetchrow(
            "SELECT state, offsets, events, cluster_id FROM experiments_checkpoints "
            "WHERE name = $1",
            name,
        )
        if row is None:
            return None
        text = await asyncio.to_thread(zlib.decompress, row["state"])
        return Checkpoint(
            json.loads(text), dict(json.loads(row["offsets"])), row["events"], row["cluster_id"]
        )

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        text = json.dumps(checkpoint.state, separators=(",", ":")).encode()
        blob = await asyncio.to_thread(zlib.compress, text, 1)
        await self.pool.execute(
            """
            INSERT INTO experiments_checkpoints (name, state, offsets, events, cluster_id)
            VALUES ($1, $2, $3::jsonb, $4, $5)
            ON CONFLICT (name) DO UPDATE
              SET state = EXCLUDED.state, offsets = EXCLUDED.offsets,
                  events = EXCLUDED.events, cluster_id = EXCLUDED.cluster_id, saved_at = now()
            """,
            name,
            blob,
            json.dumps(checkpoint.offsets),
            checkpoint.events,
            checkpoint.cluster_id,
        )
