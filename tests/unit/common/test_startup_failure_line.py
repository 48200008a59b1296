"""A service whose database does not answer at start-up says so in one line, not a traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from finops.common.datastores import DatabaseUnreachable
from finops.common.errors import NotFound
from finops.common.runner import OneLineStartupFailure
from finops.common.settings import CommonSettings


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _app_failing_with(error: BaseException) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise error
        yield

    return FastAPI(lifespan=lifespan)


def _start(app: Any) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Drive the ASGI lifespan start-up; the messages the server got and what was raised."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> BaseException | None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        except BaseException as exc:  # the test inspects it
            return exc
        return None

    return sent, asyncio.run(run())


def test_a_database_that_does_not_answer_is_reported_as_its_code_and_message() -> None:
    settings = CommonSettings(database_url="postgresql://finops:hunter2@db.internal:5999/finops")
    error = DatabaseUnreachable.of(ConnectionRefusedError(111, "Connection refused"), settings)
    sent, raised = _start(OneLineStartupFailure(_app_failing_with(error)))
    assert raised is error
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": "database_unreachable: cannot reach PostgreSQL at db.internal:5999"
            " (ConnectionRefusedError: [Errno 111] Connection refused): check that it runs and"
            " that FINOPS_DATABASE_URL names it",
        }
    ]


@pytest.mark.parametrize(
    ("bug", "last_line"),
    [
        (RuntimeError("a bug"), "RuntimeError: a bug"),
        (NotFound("no checkpoint row"), "NotFound: no checkpoint row"),
    ],
)
def test_any_other_start_up_failure_keeps_its_traceback(bug, last_line) -> None:
    sent, raised = _start(OneLineStartupFailure(_app_failing_with(bug)))
    assert raised is bug
    [message] = sent
    assert message["type"] == "lifespan.startup.failed"
    assert message["message"].startswith("Traceback (most recent call last):")
    assert message["message"].rstrip().endswith(last_line)


def test_an_unknown_connection_parameter_is_a_refusal_not_an_unreachable_server() -> None:
    # ?connect_timeout=10 (libpq's, not a server setting): the server answered 42704, which
    # read "cannot reach PostgreSQL ... check that it runs"
    settings = CommonSettings(database_url="postgresql://finops:hunter2@db.internal/finops")
    unknown = asyncpg.exceptions.UndefinedObjectError(
        'unrecognized configuration parameter "connect_timeout"'
    )
    assert DatabaseUnreachable.of(unknown, settings).message.startswith(
        "PostgreSQL at db.internal:5432 refused the connection (UndefinedObjectError:"
    )


def test_a_refused_role_or_password_says_what_to_check_without_the_password() -> None:
    settings = CommonSettings(database_url="postgresql://finops:hunter2@db.internal/finops")
    refused = asyncpg.exceptions.InvalidPasswordError(
        'password authentication failed for user "finops"'
    )
    error = DatabaseUnreachable.of(refused, settings)
    assert error.message == (
        "PostgreSQL at db.internal:5432 refused the connection (InvalidPasswordError: password"
        ' authentication failed for user "finops"): check the role, password, database and'
        " parameters FINOPS_DATABASE_URL names"
    )
    assert "hunter2" not in error.message


@pytest.mark.parametrize("service", ["auth", "optimizer", "healer", "experiments"])
def test_a_service_started_without_its_database_logs_one_line_and_exits(
    service: str, tmp_path
) -> None:
    port = _closed_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")},
        "FINOPS_DATABASE_URL": f"postgresql://finops:hunter2@127.0.0.1:{port}/finops",
        "FINOPS_PORT": str(_closed_port()),
        "FINOPS_DATA_DIR": str(tmp_path),
    }
    ended = subprocess.run(
        [sys.executable, "-m", f"finops.{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = ended.stdout + ended.stderr
    assert ended.returncode == 3, output
    assert "Traceback" not in output
    assert (
        f"database_unreachable: cannot reach PostgreSQL at 127.0.0.1:{port}"
        " (ConnectionRefusedError: [Errno 111] Connection refused)"
    ) in output
    assert "hunter2" not in output


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "postgresql://u:hunter2@127.0.0.1:{port},127.0.0.1:{port}/db",
            "cannot reach PostgreSQL at 127.0.0.1:{port},127.0.0.1:{port} (",
        ),
        (
            "postgresql://u:hunter2@127.0.0.1:{port}/db?sslmode=bogus",
            "FINOPS_DATABASE_URL's connection settings for PostgreSQL at 127.0.0.1:{port} are"
            " refused (ClientConfigurationError: `sslmode` parameter must be one of",
        ),
        (
            "postgresql://u:hunter2@127.0.0.1:{port}/db?sslmode=verify-full&sslrootcert=/absent",
            "a file FINOPS_DATABASE_URL names cannot be read (FileNotFoundError",
        ),
    ],
    ids=["several-hosts", "bad-sslmode", "absent-certificate"],
)
def test_a_database_url_the_client_cannot_use_says_why_in_one_line(url, said) -> None:
    # several hosts raised a ValueError from the port while the error was being written (a
    # traceback again); the others read as "cannot reach PostgreSQL: check that it runs"
    from finops.common.datastores import postgres_pool

    port = _closed_port()
    settings = CommonSettings(database_url=url.format(port=port))

    async def open_pool() -> None:
        await postgres_pool(settings)

    with pytest.raises(DatabaseUnreachable) as refused:
        asyncio.run(open_pool())
    assert refused.value.message.startswith(said.format(port=port))
    assert "hunter2" not in refused.value.message
