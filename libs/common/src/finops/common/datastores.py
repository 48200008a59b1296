"""PostgreSQL and Redis clients whose every call is bounded, and the 503 their failures become.

A server that is down answers quickly with a refused or reset connection; a frozen one (a
stopped process, a network partition) answers nothing at all, and an unbounded call waits for
it as long as the kernel keeps the connection. So every connect, pool checkout, query and
Redis command here has a timeout from :class:`CommonSettings`, and
:func:`install_dependency_failure_handler` turns whatever those failures raise into
503 ``dependency_unavailable`` with Retry-After instead of a 500.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from finops.common.auth.blocklist import blocklist_redis
from finops.common.error_handlers import error_response
from finops.common.errors import DependencyUnavailable, FinopsError, Unavailable
from finops.common.settings import CommonSettings

log = logging.getLogger(__name__)

#: What a dependency that is down, frozen or overwhelmed raises.
DEPENDENCY_FAILURES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (asyncpg's timeouts) is one too
    asyncpg.PostgresConnectionError,  # SQLSTATE 08: the connection failed
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting up, cancelled
    RedisConnectionError,  # refused, reset, loading, no free connection in the pool
    RedisTimeoutError,
)


#: how each of asyncpg's ``InterfaceError`` messages about a connection found closed ends:
#: "connection is closed", "cannot perform operation: connection is closed", "cannot call
#: Transaction.__aexit__(): the underlying connection is closed"
_CLOSED_CONNECTION = "connection is closed"


def is_dependency_failure(exc: BaseException) -> bool:
    """True for a failure of the server, not of the request.

    asyncpg reports a statement on a connection that just timed out (a rollback on the way
    out of a transaction, say) as an ``InterfaceError`` chained to that timeout. A connection
    the server dropped while a transaction was open, between two statements or just before
    the COMMIT, is an ``InterfaceError`` from the transaction's end that says the connection
    is closed, chained to nothing (or to another such error, of the statement sent on it).
    An ``InterfaceError`` chained to anything else is decided by that: the connection was
    found closed while the code was failing, or being cancelled, for reasons of its own.
    """
    if isinstance(exc, DEPENDENCY_FAILURES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            return is_dependency_failure(cause)
        return str(exc).endswith(_CLOSED_CONNECTION)
    return False


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose checkouts wait at most ``acquire_timeout`` seconds.

    asyncpg applies a timeout to ``acquire()`` only when each caller passes one, and its
    ``fetchrow``/``execute`` shortcuts never do; a frozen server then holds every connection
    and the queue of requests waiting for one grows without bound. The same budget bounds
    the release, which waits for the server to acknowledge a cancelled statement.
    """

    __slots__ = ("_acquire_timeout",)

    def __init__(self, dsn: str, *, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(dsn, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


#: SQLSTATE classes of a server that answered but may take the connection if tried again: 08,
#: the connection failed; 53, too many connections; 57, starting up or shutting down. Any
#: other (28, a wrong role or password; 3D, no such database; 42, an unknown parameter) is a
#: refusal that waiting will not mend
_PASSING_SQLSTATE_CLASSES = ("08", "53", "57")


class DatabaseUnreachable(FinopsError):
    """A service could not open its PostgreSQL pool at start-up: nothing answered at
    ``FINOPS_DATABASE_URL``'s address, or the server refused its role, password or database.
    Built with :meth:`of`, which names the address (never the password) and the reason.

    Examples
    --------
    >>> settings = CommonSettings(database_url="postgresql://u:secret@db.internal:5999/finops")
    >>> error = DatabaseUnreachable.of(ConnectionRefusedError(111, "Connection refused"), settings)
    >>> error.code, error.details["where"], "secret" in error.message
    ('database_unreachable', 'db.internal:5999', False)
    >>> error.message.endswith("check that it runs and that FINOPS_DATABASE_URL names it")
    True
    """

    code, message = "database_unreachable", "cannot reach PostgreSQL"

    @classmethod
    def of(cls, error: BaseException, settings: CommonSettings) -> DatabaseUnreachable:
        where = _database_address(settings.database_url)
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        if isinstance(error, asyncpg.exceptions.ClientConfigurationError):
            message = (
                f"FINOPS_DATABASE_URL's connection settings for PostgreSQL at {where} are"
                f" refused ({reason})"
            )
        elif isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            message = (
                f"a file FINOPS_DATABASE_URL names cannot be read ({reason}): check its"
                " sslrootcert, sslcert and sslkey"
            )
        elif isinstance(error, asyncpg.PostgresError) and not sqlstate.startswith(
            _PASSING_SQLSTATE_CLASSES
        ):
            message = (
                f"PostgreSQL at {where} refused the connection ({reason}): check the role,"
                " password, database and parameters FINOPS_DATABASE_URL names"
            )
        else:
            message = (
                f"cannot reach PostgreSQL at {where} ({reason}): check that it runs and that"
                " FINOPS_DATABASE_URL names it"
            )
        return cls(message, details={"where": where, "error": reason})


def _database_address(url: str) -> str:
    """Where a PostgreSQL URL points, without its user or password: ``host:port``, the hosts
    as written when it names several (``h1:5432,h2:5433``), or ``its socket``.

    Examples
    --------
    >>> _database_address("postgresql://u:p@db:5999/finops")
    'db:5999'
    >>> _database_address("postgresql://u:p@h1:5432,h2:5433/finops")
    'h1:5432,h2:5433'
    >>> _database_address("postgresql:///finops?host=/run/postgresql")
    'its socket'
    """
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if "," in hosts:
        return hosts
    if not parts.hostname:
        return "its socket"
    try:
        port = parts.port
    except ValueError:  # not a number: the settings refuse that; say what is written
        return hosts
    return f"{parts.hostname}:{port or 5432}"


async def postgres_pool(
    settings: CommonSettings, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool on ``settings.database_url`` with connect, checkout and statement timeouts;
    :class:`DatabaseUnreachable` when its first connection cannot be opened."""
    try:
        return await _open_pool(settings, min_size=min_size, max_size=max_size)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnreachable.of(exc, settings) from exc


async def _open_pool(settings: CommonSettings, *, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = BoundedPool(
        settings.database_url,
        acquire_timeout=settings.postgres_acquire_timeout_s,
        min_size=min_size,
        max_size=max_size,
        # asyncpg's own defaults, spelled out because the constructor requires them.
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        # Passed through to every connection:
        timeout=settings.postgres_connect_timeout_s,
        command_timeout=settings.postgres_command_timeout_s,
    )
    return await pool


def redis_client(settings: CommonSettings, *, max_connections: int = 64) -> aioredis.Redis:
    """A Redis client on ``settings.redis_url`` whose connects and commands time out."""
    return blocklist_redis(
        settings.redis_url,
        max_connections=max_connections,
        wait_seconds=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
    )


def install_dependency_failure_handler(app: FastAPI, retry_after_seconds: int) -> None:
    """Answer a dependency failure anywhere in a request with 503 ``dependency_unavailable``,
    and give every 503 (``Unavailable`` raised anywhere) a Retry-After.

    Other exceptions of the same types (a unique violation is a ``PostgresError`` too) are
    raised on to the generic handler, as if this one were not there.
    """

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, Unavailable):
            error = exc
        elif is_dependency_failure(exc):
            log.warning("a dependency failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            error = DependencyUnavailable()
        else:
            raise exc
        response = error_response(error)
        response.headers.setdefault("Retry-After", str(retry_after_seconds))
        return response

    for kind in (
        Unavailable,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        RedisError,
    ):
        app.add_exception_handler(kind, unavailable)
