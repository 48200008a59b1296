"""Checkpoints: a consumer's state and the Kafka offsets it covers, saved in one row.

Restoring a checkpoint and seeking to its offsets replays exactly the events the state has
not seen, so a restart neither loses what was learned nor counts an event twice. Each service
keeps its checkpoints in a table of its own (``<service>_checkpoints``: name, compressed JSON
state, offsets, events, cluster id, saved_at); this module reads and writes any of them.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Checkpoint:
    """What a consumer saves: its state, the offsets it covers, how many events it applied."""

    state: dict[str, Any] | bytes  # the state, or its JSON text already serialised
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    events: int = 0
    cluster_id: str | None = None  # the broker cluster the offsets were read from

    def state_dict(self) -> dict[str, Any]:
        """The state as a dict (a loaded checkpoint's is one already)."""
        return self.state if isinstance(self.state, dict) else dict(json.loads(self.state))


class CheckpointSource(Protocol):
    """Where a consumer's last checkpoint is read from."""

    async def load(self, name: str) -> Checkpoint | None: ...


class CheckpointStore(CheckpointSource, Protocol):
    async def save(self, name: str, checkpoint: Checkpoint) -> None: ...


async def serialize_in_parts(parts: list[tuple[str, Callable[[], Any]]]) -> bytes:
    """JSON of ``{name: build()}``, yielding to the event loop between parts.

    A large state serialised in one go would stall every request the loop serves for tens
    of milliseconds; part by part, and a large part :data:`JSON_SLICE` items at a time, the
    longest stall is one slice's.
    """
    chunks = []
    for name, build in parts:
        pieces = [json.dumps(name) + ":"]
        for piece in _json_parts(build()):  # a large part in slices (see json_bytes)
            pieces.append(piece)
            await asyncio.sleep(0)
        chunks.append("".join(pieces))
    return ("{" + ",".join(chunks) + "}").encode()


#: the items of a list, or entries of a dict, that :func:`json_bytes` encodes in one call
JSON_SLICE = 500


def json_bytes(state: dict[str, Any]) -> bytes:
    """The compact JSON a checkpoint stores, byte for byte ``json.dumps(state,
    separators=(",", ":"))``, built a slice at a time.

    Callers with a snapshot build it on a thread, but the C encoder holds the GIL for a whole
    ``json.dumps``: the event loop's thread waited for it (a healer ledger of a few thousand
    advices and tens of thousands of error ids: 10 to 35 ms, every checkpoint). Lists and
    string-keyed dicts are encoded :data:`JSON_SLICE` items per call, and between two calls
    the loop's thread may take the GIL back.

    Examples
    --------
    >>> state = {"ids": list(range(1200)), "kinds": {"a": 1.5, "b": None}, "n": [True, "x"]}
    >>> json_bytes(state) == json.dumps(state, separators=(",", ":")).encode()
    True
    """
    return "".join(_json_parts(state)).encode()


def _json_parts(value: Any) -> Iterator[str]:
    if isinstance(value, list) and len(value) > JSON_SLICE:
        yield "["
        for start in range(0, len(value), JSON_SLICE):
            yield ("," if start else "") + _compact(value[start : start + JSON_SLICE])[1:-1]
        yield "]"
    elif isinstance(value, dict) and _holds_much(value):
        yield "{"
        written = False
        batch: dict[str, Any] = {}
        for key, item in value.items():
            if len(batch) == JSON_SLICE or (batch and _is_large(item)):
                yield ("," if written else "") + _compact(batch)[1:-1]
                written, batch = True, {}
            if _is_large(item):
                yield ("," if written else "") + _compact(key) + ":"
                yield from _json_parts(item)
                written = True
            else:
                batch[key] = item
        if batch:
            yield ("," if written else "") + _compact(batch)[1:-1]
        yield "}"
    else:
        yield _compact(value)


def _is_large(value: Any) -> bool:
    return isinstance(value, list | dict) and (len(value) > JSON_SLICE or _holds_much(value))


def _holds_much(value: Any) -> bool:
    """A string-keyed dict too large for one call, or holding a value that is."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        return False
    return len(value) > JSON_SLICE or any(
        isinstance(item, list | dict) and len(item) > JSON_SLICE for item in value.values()
    )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _decode(blob: bytes) -> dict[str, Any]:
    return dict(json.loads(zlib.decompress(blob)))


class PostgresCheckpointStore:
    """Checkpoints in ``table`` (one of the services' ``*_checkpoints`` tables)."""

    def __init__(self, pool: Any, table: str) -> None:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.pool = pool
        self.table = table

    async def load(self, name: str) -> Checkpoint | None:
        row = await self.pool.fetchrow(
            f"SELECT state, offsets, events, cluster_id FROM {self.table} WHERE name = $1",  # noqa: S608
            name,
        )
        if row is None:
            return None
        state = await asyncio.to_thread(_decode, row["state"])
        offsets = dict(json.loads(row["offsets"]))
        return Checkpoint(state, offsets, row["events"], row["cluster_id"])

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        # A dict is serialised on the loop (it may share objects with the live state); only
        # the compression of the finished bytes runs on a thread.
        state = checkpoint.state
        text = state if isinstance(state, bytes) else json_bytes(state)
        blob = await asyncio.to_thread(zlib.compress, text, 1)
        await self.pool.execute(
            f"""
            INSERT INTO {self.table} (name, state, offsets, events, cluster_id, saved_at)
            VALUES ($1, $2, $3::jsonb, $4, $5, now())
            ON CONFLICT (name) DO UPDATE
              SET state = EXCLUDED.state, offsets = EXCLUDED.offsets,
                  events = EXCLUDED.events, cluster_id = EXCLUDED.cluster_id, saved_at = now()
            """,  # noqa: S608 -- the table name is an identifier chosen by the service
            name,
            blob,
            json.dumps(checkpoint.offsets),
            checkpoint.events,
            checkpoint.cluster_id,
        )

    async def save_at(
        self, name: str, checkpoint: Checkpoint, position: int | None, *, conn: Any = None
    ) -> bool:
        """Save a partition's checkpoint unless the row holds one further along it.

        ``position`` is the partition's next offset (the table needs a ``position`` column):
        an instance that lost its partition without knowing it (its session expired under
        load) cannot overwrite its successor's checkpoint with an older one. False when the
        save was refused for that reason. ``conn`` saves inside a caller's transaction.
        """
        state = checkpoint.state
        text = state if isinstance(state, bytes) else json_bytes(state)
        blob = await asyncio.to_thread(zlib.compress, text, 1)
        saved = await (conn or self.pool).fetchval(
            f"""
            INSERT INTO {self.table} (name, state, offsets, events, cluster_id, position)
            VALUES ($1, $2, $3::jsonb, $4, $5, $6)
            ON CONFLICT (name) DO UPDATE
              SET state = EXCLUDED.state, offsets = EXCLUDED.offsets,
                  events = EXCLUDED.events, cluster_id = EXCLUDED.cluster_id,
                  position = EXCLUDED.position, saved_at = now()
              WHERE EXCLUDED.position IS NULL OR {self.table}.position IS NULL
                 OR {self.table}.position <= EXCLUDED.position
                 OR {self.table}.cluster_id IS DISTINCT FROM EXCLUDED.cluster_id
            RETURNING name
            """,  # noqa: S608 -- the table name is an identifier chosen by the service
            name,
            blob,
            json.dumps(checkpoint.offsets),
            checkpoint.events,
            checkpoint.cluster_id,
            position,
        )
        return saved is not None
