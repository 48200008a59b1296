"""Which exceptions are a dependency's failure, and the 503 the HTTP layer makes of them."""

from __future__ import annotations

import asyncpg
import pytest
import redis.exceptions
from fastapi.testclient import TestClient
from pg_fakes import DroppingConnection

from finops.common.datastores import is_dependency_failure
from finops.common.errors import Unavailable
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings


def _interface_error_after(cause: BaseException) -> asyncpg.InterfaceError:
    """What asyncpg raises for a statement sent while ``cause`` was being handled."""
    error = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    error.__context__ = cause
    return error


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        ConnectionRefusedError(111, "Connect call failed"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        redis.exceptions.ConnectionError("Connection closed by server."),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        _interface_error_after(TimeoutError()),
    ],
    ids=repr,
)
def test_failures_of_the_server_are_dependency_failures(exc: BaseException) -> None:
    assert is_dependency_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InterfaceError("the pool is closing"),
        redis.exceptions.ResponseError("WRONGTYPE"),
        _interface_error_after(ValueError()),
        ValueError("bug"),
    ],
    ids=repr,
)
def test_errors_of_the_request_or_the_code_are_not(exc: BaseException) -> None:
    assert not is_dependency_failure(exc)


async def _transaction_on_a_dropped_connection(drop_after: str) -> asyncpg.InterfaceError:
    """What asyncpg raises from a transaction (``BEGIN``, then one statement) whose connection
    PostgreSQL drops after the statement ``drop_after``."""
    conn = DroppingConnection(drop_after)
    with pytest.raises(asyncpg.InterfaceError) as raised:
        async with conn.transaction():
            await conn.execute("UPDATE t SET x = 1")
    assert "the underlying connection is closed" in str(raised.value)
    return raised.value


@pytest.mark.parametrize(
    "drop_after",
    [
        # dropped while the transaction's body awaited something else (a checkpoint's
        # compression on a thread): its next statement meets a closed connection
        "BEGIN",
        # dropped after the body's last statement was answered, before the COMMIT
        "UPDATE",
    ],
)
async def test_a_connection_dropped_in_a_transaction_is_a_dependency_failure(drop_after):
    # asyncpg raises an InterfaceError from the transaction's __aexit__, chained to nothing
    # (or to the InterfaceError of the statement sent on the closed connection): neither is
    # a bug to crash on, PostgreSQL went away
    assert is_dependency_failure(await _transaction_on_a_dropped_connection(drop_after))


def test_an_interface_error_of_the_code_on_a_closed_connection_is_not() -> None:
    # the connection closed under a body that had failed on its own: the body's error decides
    error = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    error.__context__ = ValueError("bug")
    assert not is_dependency_failure(error)
    released = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection has been released "
        "back to the pool"
    )
    assert not is_dependency_failure(released)


def _client_raising(exc: BaseException) -> TestClient:
    app = create_service_app(
        CommonSettings(service_name="t", dependency_retry_after_s=7), title="t", description="t"
    )

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_dependency_failure_is_503_dependency_unavailable_with_retry_after() -> None:
    response = _client_raising(redis.exceptions.TimeoutError("Timeout reading")).get("/boom")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert response.headers["Retry-After"] == "7"


def test_every_503_says_when_to_retry() -> None:
    response = _client_raising(Unavailable("the signing keys cannot be fetched")).get("/boom")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "7"


def test_other_errors_of_the_same_libraries_stay_500() -> None:
    response = _client_raising(asyncpg.UniqueViolationError("duplicate key")).get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
