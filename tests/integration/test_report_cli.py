"""`finops report` before any simulation, or with nothing running: one line saying what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.report import store
from finops.cli.simulation.timeline import Timeline
from finops.cli.stack.ports import free_port

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


def test_demo_refuses_a_reports_folder_it_cannot_create_before_starting_anything(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path / "stack")}

    result = CliRunner().invoke(app, ["demo", "--reports", str(blocker / "reports")], env=env)

    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        f"error: --reports {blocker / 'reports'}: {blocker} is not a folder"
    )
    assert not (tmp_path / "stack").exists()  # no stack was started


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '{"result": {"saving": 0.5}, "timeli',
            "not JSON (Unterminated string starting at: line 1 column 29 (char 28))",
        ),
        ("{}", "no simulation result in it"),
        ('{"result": {"saving": 0.5}}', "no 'timeline' in it"),
        (
            '{"result": {}, "timeline": {"bucket_min": 1, "buckets": [1]}}',
            "the timeline is not one a simulation writes",
        ),
        (b"\xff\xfe", "not text (invalid start byte)"),
    ],
    ids=["truncated", "empty-object", "no-timeline", "bad-timeline", "not-text"],
)
def test_report_with_a_damaged_kept_run_says_to_simulate_again(tmp_path, body, reason):
    kept = tmp_path / store.LAST_RUN
    kept.parent.mkdir(parents=True)
    kept.write_bytes(body if isinstance(body, bytes) else body.encode())
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}

    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r.html")], env=env)

    assert (result.exit_code, result.stdout) == (1, "")
    line = " ".join(result.stderr.split())
    assert line.startswith(f"error: the last simulation kept in {kept} cannot be read ({reason}")
    assert line.endswith("): run `finops simulate` again")
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("report", "--out", "{missing}/x.html"), "--out {missing}/x.html: the folder {missing}"),
        (("report", "--reports", "{missing}/r"), "--reports {missing}/r: the folder {missing}"),
        (("demo", "--reports", "{missing}/r"), "--reports {missing}/r: the folder {missing}"),
    ],
    ids=["report-out", "report-reports", "demo-reports"],
)
def test_a_report_path_in_a_missing_folder_is_refused_and_no_folder_made(tmp_path, args, line):
    stack = tmp_path / "stack"
    store.save(stack, store.LastRun({"saving": 0.5}, Timeline.empty()))
    missing = tmp_path / "missing"
    env = {
        **PLAIN,
        "FINOPS_DATA_DIR": str(stack),
        # nothing listens there: the refusal must come before any of it is reached
        "FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/finops",
    }
    argv = [arg.format(missing=missing) for arg in args]

    result = CliRunner().invoke(app, argv, env=env)

    assert (result.exit_code, result.stdout) == (2, "")
    assert (
        " ".join(result.stderr.split()) == f"error: {line.format(missing=missing)} does not exist"
    )
    assert not missing.exists()
