"""An asyncpg connection whose server drops it at a chosen statement (import as ``from pg_fakes
import DroppingPool``): the transactions on it are asyncpg's own, so a test sees exactly what
asyncpg raises when PostgreSQL goes away while a transaction is open, without a server and
without waiting for a race."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction


class DroppingConnection:
    """Answers every statement (``None``) until the one starting with ``drop_after``, whose
    answer is the last: the connection is closed when it returns, as when the server's reset
    reaches asyncpg after that answer and before the task goes on."""

    _pool_release_ctr = 0  # what asyncpg's ConnectionResource checks: never released

    def __init__(self, drop_after: str) -> None:
        self.drop_after = drop_after
        self.closed = False
        self.statements: list[str] = []
        self._top_xact: Transaction | None = None
        self._protocol = SimpleNamespace(is_in_transaction=lambda: False)

    def is_closed(self) -> bool:
        return self.closed

    def transaction(self) -> Transaction:
        return Transaction(self, None, False, False)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> None:
        asyncpg.Connection._check_open(self)  # asyncpg's own check and message
        self.statements.append(query.strip())
        if query.strip().startswith(self.drop_after):
            self.closed = True

    fetchval = fetchrow = fetch = executemany = execute


class DroppingPool:
    """A pool of one :class:`DroppingConnection`."""

    def __init__(self, drop_after: str) -> None:
        self.conn = DroppingConnection(drop_after)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[DroppingConnection]:
        yield self.conn
