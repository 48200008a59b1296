"""`finops status` after `finops down`: no stack runs, as `finops down` says, not stale pids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import started_at_ticks

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


def _gone_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def _state(root: Path, status: str, error: str | None = None) -> None:
    pid = _gone_pid()
    component = {"kind": "infra", "pid": pid, "ticks": 1, "host": "127.0.0.1"}
    state = {
        "status": status,
        "error": error,
        "supervisor_pid": pid,
        "supervisor_ticks": 1,
        "components": {
            "postgres": {**component, "port": free_port()},
            "redis": {**component, "port": free_port()},
        },
    }
    (root / "stack.json").write_text(json.dumps(state))


def invoke(root: Path, *args: str):
    env = {**PLAIN, "FINOPS_DATA_DIR": str(root)}
    return CliRunner().invoke(app, list(args), env=env, prog_name="finops")


def test_a_stopped_stack_is_no_stack_running(tmp_path):
    _state(tmp_path, "stopped")
    status = invoke(tmp_path, "status")
    assert (status.exit_code, status.stdout, status.stderr) == (1, "no stack is running.\n", "")
    down = invoke(tmp_path, "down")
    assert (down.exit_code, down.stdout) == (0, status.stdout)


def test_a_stack_whose_supervisor_died_lists_its_components(tmp_path):
    _state(tmp_path, "ready")
    status = invoke(tmp_path, "status")
    assert status.exit_code == 1
    rows = [line.split("│")[1:3] for line in status.stdout.splitlines() if "│" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["postgres", "down"],
        ["redis", "down"],
    ]
    # and says that nothing supervises what may be left (it listed the rows alone, a
    # component still up among them, as if it would be restarted)
    supervisor = json.loads((tmp_path / "stack.json").read_text())["supervisor_pid"]
    assert status.stdout.splitlines()[-1] == (
        f"the supervisor (pid {supervisor}) is not running: nothing restarts a component that"
        f" stops; run `FINOPS_DATA_DIR={tmp_path.resolve()} finops down`, then"
        f" `FINOPS_DATA_DIR={tmp_path.resolve()} finops up`"
    )


def test_without_a_state_file_no_stack_has_been_started(tmp_path):
    status = invoke(tmp_path, "status")
    # the folder looked in, whatever FINOPS_DATA_DIR says (not a hard-coded .finops)
    assert (status.exit_code, " ".join(status.stdout.split())) == (
        1,
        f"no stack has been started here (no {tmp_path.resolve() / 'stack.json'}); a stack"
        " started with another FINOPS_DATA_DIR shows with that one set.",
    )


def test_down_after_a_crash_leaves_no_stack_running(tmp_path):
    # the supervisor was killed (kill -9, a reboot): nothing to stop, and the state says so
    _state(tmp_path, "ready")
    down = invoke(tmp_path, "down")
    assert (down.exit_code, down.stdout) == (0, "no stack is running.\n")
    status = invoke(tmp_path, "status")
    assert (status.exit_code, status.stdout) == (1, "no stack is running.\n")


def test_a_failed_start_is_no_stack_running_with_its_error(tmp_path):
    # the start stopped what it had started: a table of stale pids said nothing of why
    error = "FINOPS_FALLBACK_MODELS=gpt-4o,claude: should be JSON"
    _state(tmp_path, "failed", error)
    status = invoke(tmp_path, "status")
    assert (status.exit_code, status.stdout) == (
        1,
        f"no stack is running: the last start failed: {error}\n",
    )


def test_a_component_whose_pid_was_reused_is_down(tmp_path):
    # the recorded pid is this test's process, started at another time than recorded
    me = os.getpid()
    state = {
        "status": "ready",
        "supervisor_pid": me,
        "supervisor_ticks": started_at_ticks(me),
        "components": {
            "redis": {
                "kind": "infra",
                "pid": me,
                "ticks": (started_at_ticks(me) or 0) + 1,
                "host": "127.0.0.1",
                "port": free_port(),
            }
        },
    }
    (tmp_path / "stack.json").write_text(json.dumps(state))
    status = invoke(tmp_path, "status")
    rows = [line.split("│")[1:3] for line in status.stdout.splitlines() if "│" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [["redis", "down"]]


def test_up_and_demo_refuse_while_a_stack_runs_with_exit_2(tmp_path):
    me = os.getpid()  # a live supervisor: this test's process, at its start time
    state = {"status": "ready", "supervisor_pid": me, "supervisor_ticks": started_at_ticks(me)}
    (tmp_path / "stack.json").write_text(json.dumps({**state, "components": {}}))
    up = invoke(tmp_path, "up")
    assert (up.exit_code, up.stderr) == (
        2,
        f"error: a stack is already running (supervisor pid {me});"
        f" see `FINOPS_DATA_DIR={tmp_path} finops status`\n",
    )
    demo = invoke(tmp_path, "demo", "--calls", "0")
    assert demo.exit_code == 2
    assert demo.stderr.startswith("error: a stack is already running here")


def test_down_where_no_stack_was_ever_started_points_at_the_data_folder(tmp_path):
    # `finops down` run with the wrong FINOPS_DATA_DIR (or from another folder, the default
    # .finops being relative) said `no stack is running.` while the stack ran on
    down = invoke(tmp_path, "down")
    assert (down.exit_code, " ".join(down.stdout.split())) == (
        0,
        f"no stack has been started here (no {tmp_path.resolve() / 'stack.json'}), so none is"
        " stopped; a stack started with another FINOPS_DATA_DIR stops with that one set"
        " (`FINOPS_DATA_DIR=<its folder> finops down`).",
    )
    assert not (tmp_path / "stack.json").exists()
