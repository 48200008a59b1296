"""`finops down` signals only the processes it started, never one that reused their pid; a
stack whose supervisor's pid was reused is not taken for a running one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.cli.process import is_same_process, pid_alive, started_at_ticks
from finops.cli.stack_state import (
    mark_stopped,
    read_state,
    running_supervisor,
    stop_recorded,
)


def _bystander() -> subprocess.Popen[bytes]:
    """Another stack's process: a process-group leader, as every component is."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )


def _state(root: Path, pid: int, ticks: int | None) -> None:
    component = {"kind": "infra", "pid": pid, "ticks": ticks, "host": "127.0.0.1", "port": 1}
    (root / "stack.json").write_text(json.dumps({"components": {"postgres": component}}))


@pytest.fixture
def other() -> Iterator[subprocess.Popen[bytes]]:
    """Another stack's process, ended after the test."""
    process = _bystander()
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_pid_reused_by_another_process_is_left_alone(tmp_path, other):
    ticks = started_at_ticks(other.pid)
    assert ticks is not None
    # The recorded process started at another time: the pid was reused since.
    _state(tmp_path, other.pid, ticks - 1)
    assert stop_recorded(tmp_path, timeout=1) == []
    assert pid_alive(other.pid)


def test_the_recorded_process_itself_is_stopped(tmp_path):
    own = _bystander()
    try:
        _state(tmp_path, own.pid, started_at_ticks(own.pid))
        stopped = stop_recorded(tmp_path, timeout=1)
        assert stopped == [f"postgres (pid {own.pid}, killed)"]
        assert own.wait(timeout=10) != 0
    finally:
        if own.poll() is None:
            own.kill()
            own.wait()


def test_same_process_needs_the_same_start_time():
    own = _bystander()
    try:
        ticks = started_at_ticks(own.pid)
        assert is_same_process(own.pid, ticks)
        assert not is_same_process(own.pid, (ticks or 0) + 1)
        assert is_same_process(own.pid, None)  # an older state file: the pid alone decides
    finally:
        own.kill()
        own.wait()
    assert not is_same_process(own.pid, ticks)


def _supervised(root: Path, pid: int, ticks: int | None) -> None:
    state = {"status": "ready", "supervisor_pid": pid, "supervisor_ticks": ticks, "components": {}}
    (root / "stack.json").write_text(json.dumps(state))


def test_a_supervisor_pid_reused_by_another_process_is_no_running_stack(tmp_path, other):
    # after a reboot or a kill -9: `finops up` refused while `finops down` found nothing
    ticks = started_at_ticks(other.pid)
    assert ticks is not None
    _supervised(tmp_path, other.pid, ticks - 1)
    assert running_supervisor(tmp_path) is None
    _supervised(tmp_path, other.pid, ticks)
    assert running_supervisor(tmp_path) == other.pid


def test_a_stale_state_is_marked_stopped(tmp_path, other):
    ticks = started_at_ticks(other.pid)
    assert ticks is not None
    _supervised(tmp_path, other.pid, ticks - 1)  # its supervisor's pid is another's now
    mark_stopped(tmp_path)
    state = read_state(tmp_path)
    assert state is not None
    assert (state["status"], state["supervisor_pid"]) == ("stopped", other.pid)
    assert running_supervisor(tmp_path) is None


def test_a_state_whose_supervisor_runs_is_not_marked_stopped(tmp_path):
    # a stack started since `finops down` read the file: its state stands
    me = os.getpid()
    _supervised(tmp_path, me, started_at_ticks(me))
    mark_stopped(tmp_path)
    state = read_state(tmp_path)
    assert state is not None and state["status"] == "ready"
    assert running_supervisor(tmp_path) == me
