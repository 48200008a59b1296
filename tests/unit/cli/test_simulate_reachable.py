"""`finops simulate` asks every service's ``/healthz`` before the run.

A service it cannot reach is one line at once naming it and its ``FINOPS_<SERVICE>_URL``,
exit 1, rather than minutes of waiting for an optimizer that is not there, deliveries to
ingest retried for ever or a run that quietly does without the healer. No stack: the other
services are a tiny HTTP server answering ``/healthz``; the missing one is a closed port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import healthz_server
from typer.testing import CliRunner

from finops.cli.main import app

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
