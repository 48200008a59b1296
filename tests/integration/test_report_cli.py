"""`finops report` before any simulation, or with nothing running: one line saying what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.process import free_port
from finops.cli.report import store
from finops.cli.simulation.timeline import Timeline

pytestmark = pytest.mark.integration

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


def test_report_before_any_simulation_says_to_run_one(tmp_path):
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}

    result = CliRunner().invoke(app, ["report"], env=env)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert " ".join(result.stderr.split()) == (
        f"error: no simulation has run on the stack in {tmp_path}: run `finops simulate` first "
        "(or `make demo`, which writes its report itself)"
    )


def test_report_with_the_stack_down_names_what_it_cannot_reach(tmp_path):
    store.save(tmp_path, store.LastRun({"saving": 0.5}, Timeline.empty()))
    port = free_port()
    env = {
        **PLAIN,
        "FINOPS_DATA_DIR": str(tmp_path),
        "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/finops",
    }

    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r.html")], env=env)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach PostgreSQL at 127.0.0.1:{port}")
    assert not (tmp_path / "r.html").exists()
