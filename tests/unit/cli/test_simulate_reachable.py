"""`finops simulate` asks every service's ``/healthz`` before the run.

A service it cannot reach is one line at once naming it and its ``FINOPS_<SERVICE>_URL``,
exit 1, rather than minutes of waiting for an optimizer that is not there, deliveries to
ingest retried for ever or a run that quietly does without the healer. No stack: the other
services are a tiny HTTP server answering ``/healthz``; the missing one is a closed port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import healthz_server
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.process import started_at_ticks
from finops.cli.stack.state import write_state_file

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
CLOSED = "http://127.0.0.1:1"


@pytest.fixture
def healthy_url() -> Iterator[str]:
    with healthz_server() as url:
        yield url


@pytest.mark.parametrize("missing", ["optimizer", "ingest", "healer", "auth", "experiments"])
def test_an_unreachable_service_stops_simulate_before_the_run_with_one_line_naming_it(
    missing: str, healthy_url: str
) -> None:
    env = dict(PLAIN)
    for name in ("auth", "ingest", "optimizer", "experiments", "healer"):
        env[f"FINOPS_{name.upper()}_URL"] = CLOSED if name == missing else healthy_url
    # nothing may reach a database before the check: this one does not exist, and reaching
    # it would be a different error line
    env["FINOPS_DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(app, ["simulate", "--calls", "100"], env=env, prog_name="finops")
    assert result.exit_code == 1, result.output
    variable = f"FINOPS_{missing.upper()}_URL"
    assert result.stderr.strip() == (
        f"error: cannot reach the {missing} service at {CLOSED} — check that it runs and "
        f"that {variable} is right"
    )
    assert result.stdout == ""


def test_a_service_answering_healthz_with_an_error_is_named(healthy_url: str) -> None:
    env = dict(PLAIN)
    for name in ("auth", "ingest", "optimizer", "experiments", "healer"):
        env[f"FINOPS_{name.upper()}_URL"] = healthy_url
    env["FINOPS_HEALER_URL"] = healthy_url + "/wrong"
    env["FINOPS_DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(app, ["simulate", "--calls", "100"], env=env, prog_name="finops")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: the healer service at {healthy_url}/wrong answered GET /healthz with HTTP 404"
        " — check that FINOPS_HEALER_URL names the healer service"
    )


@pytest.mark.parametrize("missing", ["optimizer", "auth"])
def test_a_service_on_a_port_the_user_set_names_that_port_variable(
    missing: str, healthy_url: str
) -> None:
    # Before, the auth service's line said "check … FINOPS_AUTH_URL is right" though the
    # user never set it (the command filled it in from the port), and the optimizer's
    # "start the stack …, or set FINOPS_OPTIMIZER_URL" though the user had set its port.
    env: dict[str, str | None] = dict(PLAIN)
    for name in ("auth", "ingest", "optimizer", "experiments", "healer"):
        env[f"FINOPS_{name.upper()}_URL"] = None if name == missing else healthy_url
    env[f"FINOPS_{missing.upper()}_PORT"] = "1"
    env["FINOPS_DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(app, ["simulate", "--calls", "100"], env=env, prog_name="finops")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: cannot reach the {missing} service at {CLOSED} — check that it runs and "
        f"that FINOPS_{missing.upper()}_PORT is right"
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FINOPS_POSTGRES_PORT": "1", "FINOPS_DATABASE_URL": None}, "FINOPS_POSTGRES_PORT"),
        (
            {"FINOPS_POSTGRES_PORT": None, "FINOPS_DATABASE_URL": "postgresql://u@127.0.0.1:1/d"},
            "FINOPS_DATABASE_URL",
        ),
    ],
    ids=["port", "url"],
)
def test_db_wait_names_the_variable_in_effect(env: dict[str, str | None], variable: str) -> None:
    # FINOPS_POSTGRES_PORT=1 used to be told to check FINOPS_DATABASE_URL, which the user had
    # not set: the command builds that URL from the port
    result = CliRunner().invoke(
        app, ["db", "wait", "--timeout", "0.5"], env={**PLAIN, **env}, prog_name="finops"
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot reach PostgreSQL at 127.0.0.1:1 in 0.5 s — check that it runs and that "
        f"{variable} is right"
    )


def test_a_stack_running_without_its_services_is_named_with_how_to_start_them(
    tmp_path: Path,
) -> None:
    # Before, an `--infra-only` stack's missing services read "start the stack with
    # `finops up --detach`", though a stack ran: that `up` refuses, a stack is running.
    me = os.getpid()
    infra = {"kind": "infra", "host": "127.0.0.1", "port": 1, "pid": None, "external": False}
    write_state_file(
        tmp_path,
        {
            "status": "ready",
            "supervisor_pid": me,  # this test's process stands for the stack's supervisor
            "supervisor_ticks": started_at_ticks(me),
            "components": {name: infra for name in ("postgres", "redis", "kafka")},
        },
    )
    env: dict[str, str | None] = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}
    for name in ("auth", "ingest", "optimizer", "experiments", "healer"):
        env[f"FINOPS_{name.upper()}_URL"] = None
        env[f"FINOPS_{name.upper()}_PORT"] = "1"  # not the default ports: a demo may run there
    env["FINOPS_DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(app, ["simulate", "--calls", "100"], env=env, prog_name="finops")
    assert result.exit_code == 1, result.output
    stack = f"FINOPS_DATA_DIR={tmp_path}"
    assert result.stderr.strip() == (
        f"error: cannot reach the auth service at {CLOSED} — the stack running from {tmp_path}"
        " has no services (started with --infra-only): start the service if you run the"
        f" services yourself, or stop the stack with `{stack} finops down` and start it whole"
        f" with `{stack} finops up --detach`"
    )


def test_a_stopped_stack_still_gets_the_hint_to_start_one(tmp_path: Path) -> None:
    write_state_file(tmp_path, {"status": "stopped", "supervisor_pid": None, "components": {}})
    env: dict[str, str | None] = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}
    for name in ("auth", "ingest", "optimizer", "experiments", "healer"):
        env[f"FINOPS_{name.upper()}_URL"] = None
        env[f"FINOPS_{name.upper()}_PORT"] = "1"
    env["FINOPS_DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(app, ["simulate", "--calls", "100"], env=env, prog_name="finops")
    assert result.stderr.strip() == (
        f"error: cannot reach the auth service at {CLOSED} — check that it runs and that"
        " FINOPS_AUTH_PORT is right"
    )
