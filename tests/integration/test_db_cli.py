"""`finops db upgrade` and `finops db downgrade` say the revision each schema reached, read
back from the database, not the target they were given (``head``, ``-1``,
``optimizer@head``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.script import ScriptDirectory
from support import own_database
from typer.testing import CliRunner

from finops.cli.main import app
from finops.common import migrations

pytestmark = pytest.mark.integration

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
SERVICES = migrations.services_with_migrations()


@pytest.fixture
async def empty_database(infra) -> AsyncIterator[str]:
    """A database of its own on the test server, with no schema; dropped afterwards."""
    async with own_database(infra.database_url, "dbcli") as url:
        yield url


def db(*args: str, url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["db", *args], env={**PLAIN, "FINOPS_DATABASE_URL": url})
    return result.exit_code, result.stdout, result.stderr


def head(service: str) -> str:
    return migrations.heads(service)[0]


def before_head(service: str) -> str:
    scripts = ScriptDirectory.from_config(migrations.alembic_config(service, "postgresql://x/"))
    down = scripts.get_revision(head(service)).down_revision
    assert isinstance(down, str)
    return down


def test_upgrade_and_downgrade_print_the_revisions_reached(empty_database):
    url = empty_database
    assert db("upgrade", "optimizer@head", url=url) == (
        0,
        f"migrated optimizer to {head('optimizer')}\n",
        "",
    )
    # optimizer was at head already: it is said so, not said to have been migrated
    every = ", ".join(
        f"{service} {'already at' if service == 'optimizer' else 'to'} {head(service)}"
        for service in SERVICES
    )
    assert db("upgrade", url=url) == (0, f"migrated {every}\n", "")
    at_head = ", ".join(f"{service} already at {head(service)}" for service in SERVICES)
    assert db("upgrade", url=url) == (0, f"nothing to do: {at_head}\n", "")
    # Alembic's "Relative revision +1 didn't produce 1 migrations" was shown as it was
    code, out, err = db("upgrade", "+1", url=url)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {SERVICES[0]}: there is no migration +1 from where its schema is — give head,"
        " base or a step it has (see `finops db --help`)\n"
    )
    one_down = ", ".join(f"{service} to {before_head(service)}" for service in SERVICES)
    assert db("downgrade", "-1", url=url) == (0, f"downgraded {one_down}\n", "")
    assert db("downgrade", "healer@base", url=url) == (
        0,
        "downgraded healer to base (no schema)\n",
        "",
    )


@pytest.mark.parametrize("command", ["upgrade", "downgrade"])
def test_auth_at_a_revision_says_auth_has_no_such_form(command, tmp_path):
    # refused before any connection: the URL leads nowhere
    code, out, err = db(command, "auth@head", url="postgresql://nobody@127.0.0.1:1/none")
    assert (code, out) == (2, "")
    assert err == (
        "error: auth's migrations have no auth@REVISION form (only experiments, optimizer and"
        f" healer have one): give one of its revision ids, such as {head('auth')}, or head,"
        " base or a step for every service\n"
    )
