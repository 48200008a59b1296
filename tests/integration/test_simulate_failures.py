"""`finops simulate` without a stack to run against: one line saying what to start."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.process import free_port

pytestmark = pytest.mark.integration

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


def simulate(env: dict[str, str | None]):
    return CliRunner().invoke(app, ["simulate", "--calls", "100"], env={**PLAIN, **env})


def test_without_postgresql_it_names_postgresql():
    port = free_port()
    result = simulate({"FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/finops"})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach PostgreSQL at 127.0.0.1:{port} — check that it runs and that "
        "FINOPS_DATABASE_URL is right\n"
    )


def test_without_the_auth_service_it_names_the_auth_service(infra_env):
    auth = f"http://127.0.0.1:{free_port()}"
    result = simulate({"FINOPS_AUTH_URL": auth})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach the auth service at {auth} — check that it runs and that "
        "FINOPS_AUTH_URL is right\n"
    )
