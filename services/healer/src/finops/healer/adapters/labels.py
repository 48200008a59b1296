"""Operators' error labels: stored in PostgreSQL, taught to the classifier of every instance.

The labels table is the classifier's state: at start-up an instance replays every label in
order (``id``), then keeps polling for rows it has not learned yet, so a label posted to one
healer instance reaches the others within ``label_refresh_interval_s`` and survives any
restart. Labels are added one transaction at a time, so ids commit in order and polling
past the highest id read skips none. Learning goes through one path
(:meth:`LabelSync.catch_up`, under a lock), so a label is never learned twice by the same
instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finops.common.datastores import is_dependency_failure
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.classify import ErrorClassifier

log = logging.getLogger(__name__)

PAGE = 5_000
KNOWN_KINDS = frozenset(kind.value for kind in ErrorKind)
#: Adds take this transaction-scoped advisory lock in turn (class 7401 = "healer labels"), so
#: their ids become visible in order: an instance reads new labels by id, and one committed
#: after a higher id was read would never be learned by it.
_ADD_IN_TURN = "SELECT pg_advisory_xact_lock(7401, 0)"


@dataclass(frozen=True)
class NewLabel:
    message: str
    kind: ErrorKind
    provider: str | None = None
    status: int | None = None


@dataclass(frozen=True)
class StoredLabel:
    id: int
    message: str
    #: as stored: a newer version may have stored a kind this one does not know
    kind: str


class LabelStore(Protocol):
    async def add(self, labels: Sequence[NewLabel], created_by: str) -> list[int]: ...

    async def after(self, last_id: int, limit: int) -> list[StoredLabel]: ...


class PostgresLabelStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def add(self, labels: Sequence[NewLabel], created_by: str) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_ADD_IN_TURN)
            return [
                await conn.fetchval(
                    "INSERT INTO healer_error_labels (message, kind, provider, status, created_by)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    label.message,
                    label.kind.value,
                    label.provider,
                    label.status,
                    created_by,
                )
                for label in labels
            ]

    async def after(self, last_id: int, limit: int) -> list[StoredLabel]:
        rows = await self.pool.fetch(
            "SELECT id, message, kind FROM healer_error_labels WHERE id > $1 ORDER BY id LIMIT $2",
            last_id,
            limit,
        )
        return [StoredLabel(r["id"], r["message"], r["kind"]) for r in rows]


class LabelSync:
    """Keeps one :class:`ErrorClassifier` taught every stored label, in order."""

    def __init__(self, store: LabelStore, classifier: ErrorClassifier) -> None:
        self.store = store
        self.classifier = classifier
        self.last_id = 0
        self._lock = asyncio.Lock()

    async def catch_up(self) -> int:
        """Learn every label stored since the last one learned; returns how many."""
        learned = 0
        async with self._lock:
            while batch := await self.store.after(self.last_id, PAGE):
                for label in batch:
                    self._learn(label)
                    self.last_id = label.id
                    learned += 1
                await asyncio.sleep(0)  # a long replay must not stall the event loop
        return learned

    def _learn(self, label: StoredLabel) -> None:
        if label.kind not in KNOWN_KINDS:
            # Stored by a newer version (a rolling upgrade or a downgrade): this one goes on.
            log.warning("label %s has kind %r, unknown to this version", label.id, label.kind)
            return
        try:
            self.classifier.teach(label.message, ErrorKind(label.kind))
        except ValueError:
            # Stored before a normalisation change left it no text: not fatal.
            log.warning("label %s has no text to learn from", label.id)

    async def add(self, labels: Sequence[NewLabel], created_by: str) -> list[int]:
        """Store ``labels`` and learn them (with anything else stored meanwhile)."""
        ids = await self.store.add(labels, created_by)
        await self.catch_up()
        return ids

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Learn what other instances stored, every ``interval_s``, until ``stop`` is set;
        PostgreSQL away is retried at the next interval, any other error ends the loop."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if stop.is_set():
                return
            try:
                await self.catch_up()
            except Exception as exc:
                if not is_dependency_failure(exc):
                    # not a blip (the table gone after a downgrade, say): retrying would fail
                    # the same way, so the loop ends and the process is started again
                    raise
                log.warning("could not read new error labels; retrying", extra={"error": repr(exc)})
