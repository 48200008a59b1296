"""The operator's settings ledger in PostgreSQL: the latest change of every setting.

One row per setting (``optimizer_settings``: the checkpoint name of the deployment, the
setting's key, the change as JSON and its number from the sequence ``optimizer_settings_seq``),
written by both kinds of learning before they apply a change and read when they start, so a
change made with one worker reaches the partitions and the other way round
(:mod:`finops.optimizer.service_layer.commands`). A deleted budget or a withdrawn arm stays as
its latest change: the row says it is gone. Without the table (the schema is behind
``opt0004``) both methods raise :class:`SettingsLedgerMissing`, which says what to run.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from finops.optimizer.service_layer.commands import OperatorChange


class SettingsLedgerMissing(RuntimeError):
    """The table ``optimizer_settings`` is not there: the optimizer's schema is behind
    ``opt0004`` (downgraded, or never upgraded)."""

    def __init__(self) -> None:
        super().__init__(
            "the optimizer settings ledger (table optimizer_settings, migration opt0004) is "
            "missing: run finops db upgrade"
        )


class PostgresSettingsLedger:
    """:class:`~finops.optimizer.service_layer.commands.SettingsLedger` of the deployment whose
    checkpoints are named ``name`` (``optimizer``, and ``optimizer:p<n>`` for partitions)."""

    def __init__(self, pool: Any, name: str) -> None:
        self.pool = pool
        self.name = name

    async def record(self, change: OperatorChange) -> int:
        # One statement: the number is drawn and the row written together. Two changes of one
        # setting racing (through two replicas) keep the row of the higher number.
        try:
            seq = await self.pool.fetchval(
                """
                WITH drawn AS (SELECT nextval('optimizer_settings_seq') AS seq),
                written AS (
                  INSERT INTO optimizer_settings (name, key, seq, change, updated_at)
                  SELECT $1, $2, drawn.seq, $3::jsonb, now() FROM drawn
                  ON CONFLICT (name, key) DO UPDATE
                    SET seq = EXCLUDED.seq, change = EXCLUDED.change, updated_at = now()
                    WHERE optimizer_settings.seq < EXCLUDED.seq
                )
                SELECT seq FROM drawn
                """,
                self.name,
                change.key,
                OperatorChange(change.kind, change.args).to_json().decode(),
            )
        except asyncpg.UndefinedTableError:
            raise SettingsLedgerMissing() from None
        return int(seq)

    async def latest(self) -> list[OperatorChange]:
        try:
            rows = await self.pool.fetch(
                "SELECT seq, change FROM optimizer_settings WHERE name = $1 ORDER BY seq",
                self.name,
            )
        except asyncpg.UndefinedTableError:
            raise SettingsLedgerMissing() from None
        return [OperatorChange.from_json(row["change"]).numbered(row["seq"]) for row in rows]
