"""A database that answers but refuses (a wrong role, no such database) is one line,
``error: database: …``, whatever command met it, as ``finops db wait`` says it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.report import store
from finops.cli.simulation.timeline import Timeline

pytestmark = pytest.mark.integration

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
COMMANDS = {
    "users-deactivate": ("users", "deactivate", "agent7"),
    "users-create": (
        "users",
        "create",
        "--username",
        "alice",
        "--email",
        "a@example.com",
        "--password-stdin",
    ),
    "db-upgrade": ("db", "upgrade"),
    "db-downgrade": ("db", "downgrade", "-1"),
    "db-wait": ("db", "wait", "--timeout", "5"),
    "report": ("report",),
}


def _with(url: str, **change: str) -> str:
    return urlunsplit(urlsplit(url)._replace(**change))


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("wrong", ["role", "database"])
def test_a_database_that_refuses_the_connection_is_one_line(infra, tmp_path, command, wrong):
    server = urlsplit(infra.database_url)
    if wrong == "role":
        url = _with(infra.database_url, netloc=f"bad:bad@{server.hostname}:{server.port}")
        expected = 'error: database: role "bad" does not exist\n'
    else:
        url = _with(infra.database_url, path="/nosuchdb")
        expected = 'error: database: database "nosuchdb" does not exist\n'
    store.save(tmp_path, store.LastRun({"saving": 0.5}, Timeline.empty()))  # for `report`
    env = {
        **PLAIN,
        "FINOPS_DATA_DIR": str(tmp_path),
        "FINOPS_DATABASE_URL": url,
        "FINOPS_REDIS_URL": infra.redis_url,
    }

    result = CliRunner().invoke(app, list(command), env=env, input="a long enough password\n")

    assert (result.exit_code, result.stdout, result.stderr) == (1, "", expected)
