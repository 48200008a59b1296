"""Checkpoints: the engine's state and the offsets it covers, saved in one row.

Restoring a checkpoint and seeking to its offsets replays exactly the events the state has
not seen, so a restart neither loses learned state nor counts an event twice.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, Any] | bytes  # the state, or its JSON text already serialised
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    events: int
    cluster_id: str | None = None  # the broker cluster the offsets were read from


async def serialize_in_parts(parts: list[tuple[str, Callable[[], Any]]]) -> bytes:
    """JSON of ``{name: build()}``, yielding to the event loop between parts.

    A large state serialised in one go would stall every request the loop serves for tens
    of milliseconds; part by part, the longest stall is the largest part.
    """
    chunks = []
    for name, build in parts:
        chunks.append(json.dumps(name) + ":" + json.dumps(build(), separators=(",", ":")))
        await asyncio.sleep(0)
    return ("{" + ",".join(chunks) + "}").encode()


class CheckpointStore(Protocol):
    async def load(self, name: str) -> Checkpoint | None: ...

    async def save(self, name: str, checkpoint: Checkpoint) -> None: ...


def decode(blob: bytes) -> dict[str, Any]:
    return dict(json.loads(zlib.decompress(blob)))


class PostgresCheckpointStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def load(self, name: str) -> Checkpoint | None:
        row = await self.pool.fetchrow(
            "SELECT state, offsets, events, cluster_id FROM optimizer_checkpoints WHERE name = $1",
            name,
        )
        if row is None:
            return None
        state = await asyncio.to_thread(decode, row["state"])
        offsets = dict(json.loads(row["offsets"]))
        return Checkpoint(state, offsets, row["events"], row["cluster_id"])

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        # Serialise on the loop (the state shares objects with the live engine); only the
        # compression of the finished bytes runs on a thread.
        state = checkpoint.state
        text = (
            state if isinstance(state, bytes) else json.dumps(state, separators=(",", ":")).encode()
        )
        blob = await asyncio.to_thread(zlib.compress, text, 1)
        await self.pool.execute(
            """
            INSERT INTO optimizer_checkpoints (name, state, offsets, events, cluster_id, saved_at)
            VALUES ($1, $2, $3::jsonb, $4, $5, now())
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
