"""Experiment definitions, their status and audit trail in PostgreSQL.

Every change (creation, start, stop, a decision of the analysis) is written in the same
transaction as its audit row, so the trail cannot miss a change.  The audit row of an
operator's start or stop, and of the analysis's decision, is also the *outbox* of its
announcement on ``finops.experiments.v1``: it is written unannounced, and
:meth:`ExperimentRepository.unannounced` hands it to one publisher at a time, which marks it
announced once the broker has it.  A broker that is down when the operator acts (or the
analysis decides) delays the announcement; it never loses it, nor fails the request.  A
decision is announced from what PostgreSQL recorded, so it is the same every time.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from finops.common.topics import EXPERIMENTS
from finops.experiments.domain.conclusions import conclusion_from_record
from finops.experiments.domain.definition import (
    Definition,
    ExperimentNotFound,
    NameTaken,
    transition,
)


@dataclass(frozen=True)
class Experiment:
    id: str
    definition: Definition
    status: str
    salt: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    decision: dict[str, Any] | None
    #: an operator's stop: the calls of each variant the analysis had counted when it saw
    #: it (:meth:`ExperimentRepository.record_stop_counts`); None until then
    stop_counts: list[int] | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            **self.definition.to_dict(),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "decision": self.decision,
        }


#: the transaction lock of the announcements' publisher of a topic: this number and the
#: topic's hash (no other lock of the platform uses the number)
_PUBLISHER_LOCK = 0x65787030  # "exp0"


#: the kinds of record on ``finops.experiments.v1``: an operator's start or stop, and the
#: analysis's decision
ANNOUNCEMENT_KINDS = ("started", "stopped", "decision")
#: the actions of the audit rows announced: an operator's, and the analysis's decision
_ANNOUNCED_ACTIONS = ["start", "stop", "decided", "stopped"]


@dataclass(frozen=True)
class Announcement:
    """An operator's start or stop, or the analysis's decision (``decision``, the one
    recorded), to be announced on ``finops.experiments.v1``."""

    audit_id: int
    experiment_id: str
    name: str
    task_type: str
    action: str  # "start", "stop", or the status a decision of the analysis led to
    status: str  # the status it led to
    at: datetime
    definition: Definition | None = None
    decision: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        if self.decision is not None and self.definition is not None:
            recorded = conclusion_from_record(self.experiment_id, self.definition, self.decision)
            return {"kind": "decision", **recorded}
        return {
            "kind": "started" if self.action == "start" else "stopped",
            "experiment_id": self.experiment_id,
            "name": self.name,
            "task_type": self.task_type,
            "status": self.status,
            "at": self.at.isoformat(),
        }


def _experiment(row: asyncpg.Record) -> Experiment:
    return Experiment(
        id=row["id"],
        definition=Definition.from_dict(json.loads(row["definition"])),
        status=row["status"],
        salt=row["salt"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        decision=json.loads(row["decision"]) if row["decision"] is not None else None,
        stop_counts=json.loads(row["stop_counts"]) if row["stop_counts"] is not None else None,
    )


class ExperimentRepository:
    """``announce_on``: the topic an operator's start or stop recorded here is announced on
    (the instances of a deployment share it; another deployment on the same database, a
    test's, announces its own changes on its own topic)."""

    def __init__(self, pool: asyncpg.Pool, announce_on: str = EXPERIMENTS.name) -> None:
        self.pool = pool
        self.announce_on = announce_on

    async def task_type_known(self, task_type: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM experiment_task_types WHERE task_type = $1", task_type
        )
        return found is not None

    async def record_task_types(self, task_types: Iterable[str]) -> None:
        names = sorted(set(task_types))
        if names:
            await self.pool.execute(
                "INSERT INTO experiment_task_types (task_type) SELECT unnest($1::text[]) "
                "ON CONFLICT DO NOTHING",
                names,
            )

    async def create(
        self, definition: Definition, actor: str, salt: str | None = None
    ) -> Experiment:
        """Define a draft experiment; ``salt`` (default: a random one) is what fixed splits
        hash each unit with."""
        experiment_id = str(uuid.uuid4())
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    "INSERT INTO experiments (id, name, task_type, definition, status, salt, "
                    "created_by) VALUES ($1, $2, $3, $4, 'draft', $5, $6) RETURNING *",
                    experiment_id,
                    definition.name,
                    definition.task_type,
                    json.dumps(definition.to_dict()),
                    salt or secrets.token_hex(16),
                    actor,
                )
            except asyncpg.UniqueViolationError as exc:
                raise NameTaken.at(
                    ["name"], f"an experiment named {definition.name!r} exists"
                ) from exc
            await _audit(conn, experiment_id, actor, "create", definition.to_dict())
        return _experiment(row)

    async def get(self, experiment_id: str) -> Experiment:
        row = await self.pool.fetchrow("SELECT * FROM experiments WHERE id = $1", experiment_id)
        if row is None:
            raise ExperimentNotFound(f"no experiment {experiment_id!r}")
        return _experiment(row)

    async def all(self, status: str | None = None) -> list[Experiment]:
        rows = await self.pool.fetch(
            "SELECT * FROM experiments WHERE $1::text IS NULL OR status = $1 "
            "ORDER BY created_at, id",
            status,
        )
        return [_experiment(r) for r in rows]

    async def audit(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT at, actor, action, details FROM experiment_audit WHERE experiment_id = $1 "
            "ORDER BY id",
            experiment_id,
        )
        return [
            {
                "at": r["at"].isoformat(),
                "actor": r["actor"],
                "action": r["action"],
                "details": json.loads(r["details"]),
            }
            for r in rows
        ]

    async def apply(self, experiment_id: str, action: str, actor: str) -> Experiment:
        """An operator's ``start`` or ``stop``, checked against the current status."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "SELECT status FROM experiments WHERE id = $1 FOR UPDATE", experiment_id
            )
            if status is None:
                raise ExperimentNotFound(f"no experiment {experiment_id!r}")
            target = transition(action, status)
            row = await conn.fetchrow(
                "UPDATE experiments SET status = $2, "
                "started_at = CASE WHEN $2 = 'running' THEN now() ELSE started_at END, "
                "ended_at = CASE WHEN $2 = 'running' THEN ended_at ELSE now() END "
                "WHERE id = $1 RETURNING *",
                experiment_id,
                target,
            )
            details = {"from": status, "to": target}
            await _audit(conn, experiment_id, actor, action, details, announce_on=self.announce_on)
        return _experiment(row)

    @asynccontextmanager
    async def unannounced(self, limit: int = 100) -> AsyncIterator[list[Announcement]]:
        """The operators' starts and stops not announced yet, oldest first; marked announced
        when the block ends without an exception.  One publisher at a time (a transaction
        lock): while one holds them, another is handed none, so no change is announced twice
        and an experiment's stop never goes out before its start."""
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                _PUBLISHER_LOCK,
                self.announce_on,
            )
            if not locked:
                yield []
                return
            rows = await conn.fetch(
                "SELECT a.id, a.experiment_id, a.action, a.details, a.at, e.name, e.task_type, "
                "e.definition FROM experiment_audit a JOIN experiments e ON e.id = a.experiment_id "
                "WHERE a.announced_at IS NULL AND a.announce_on = $1 "
                "AND a.action = ANY($3::text[]) ORDER BY a.id LIMIT $2",
                self.announce_on,
                limit,
                _ANNOUNCED_ACTIONS,
            )
            yield [_announcement(r) for r in rows]
            if rows:
                await conn.execute(
                    "UPDATE experiment_audit SET announced_at = now() WHERE id = ANY($1::bigint[])",
                    [r["id"] for r in rows],
                )

    async def conclude(
        self,
        experiment_id: str,
        status: str,
        decision: dict[str, Any],
        actor: str,
        *,
        announce: bool = False,
    ) -> bool:
        """The analysis ends a running experiment; False if it was no longer running (an
        operator stopped it, or a decision was recorded already: :meth:`get` has it).  With
        ``announce``, the decision (:func:`~.conclusions.recorded_decision`) is announced from
        its audit row (see :meth:`unannounced`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                "UPDATE experiments SET status = $2, ended_at = now(), decision = $3 "
                "WHERE id = $1 AND status = 'running' RETURNING id",
                experiment_id,
                status,
                json.dumps(decision),
            )
            if updated is None:
                return False
            await _audit(
                conn,
                experiment_id,
                actor,
                status,
                {"from": "running", "decision": decision},
                announce_on=self.announce_on if announce else None,
            )
        return True

    async def record_stop_counts(self, experiment_id: str, counts: list[int]) -> bool:
        """Record what the analysis had counted of each variant when it saw an operator's
        stop; False when the experiment is not stopped by an operator or has counts already
        (the first recorded stand)."""
        updated = await self.pool.fetchval(
            "UPDATE experiments SET stop_counts = $2 WHERE id = $1 AND status = 'stopped' "
            "AND decision IS NULL AND stop_counts IS NULL RETURNING id",
            experiment_id,
            json.dumps(counts),
        )
        return updated is not None


def _announcement(row: asyncpg.Record) -> Announcement:
    details = json.loads(row["details"])
    operator = row["action"] in ("start", "stop")
    return Announcement(
        audit_id=row["id"],
        experiment_id=row["experiment_id"],
        name=row["name"],
        task_type=row["task_type"],
        action=row["action"],
        status=str(details.get("to", "")) if operator else row["action"],
        at=row["at"],
        definition=None if operator else Definition.from_dict(json.loads(row["definition"])),
        decision=None if operator else details["decision"],
    )


async def _audit(
    conn: asyncpg.Connection,
    experiment_id: str,
    actor: str,
    action: str,
    details: Any,
    *,
    announce_on: str | None = None,
) -> None:
    """Write an audit row; with ``announce_on`` (a topic), unannounced: the outbox of its
    announcement there."""
    await conn.execute(
        "INSERT INTO experiment_audit "
        "(experiment_id, actor, action, details, announce_on, announced_at) "
        "VALUES ($1, $2, $3, $4, $5::text, CASE WHEN $5::text IS NULL THEN now() END)",
        experiment_id,
        actor,
        action,
        json.dumps(details),
        announce_on,
    )
