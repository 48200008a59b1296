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

from finops.cli.stack.local_stack import Stack, StackError, StackSettings
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component, is_same_process, pid_alive, started_at_ticks
from finops.cli.stack.state import (
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
        # a pid without its start time is nobody known (see below): never taken for this one
        assert not is_same_process(own.pid, None)
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


def _exits_at_once(root: Path, name: str, code: str) -> Component:
    return Component(
        name,
        "infra",
        free_port(),
        log_file=root / "logs" / f"{name}.log",
        command=lambda: [sys.executable, "-c", code],
        ready_probe=lambda: False,
    )


def test_a_start_that_failed_records_no_pid_a_later_down_could_signal(tmp_path, other):
    """`finops up` that failed part-way stopped what it had started, then recorded each
    component's pid without a start time (a reaped process has none to read); `finops down`
    took a pid alone for the process, so whoever the OS gave one of those numbers since had
    its process group SIGKILLed."""
    settings = StackSettings(data_dir=tmp_path, kafka_storage="memory", ready_timeout_s=60)
    stack = Stack(settings, infra_only=True, echo=lambda _line: None)
    first, *rest = stack.infra_names
    stack.components = {first: _exits_at_once(tmp_path, first, "raise SystemExit(3)")}
    for name in rest:
        stack.components[name] = _exits_at_once(tmp_path, name, "import time; time.sleep(600)")
    with pytest.raises(StackError, match=f"{first} exited during start-up"):
        stack.start()
    stack.write_state("failed", "a start that failed")  # as `finops up` records it

    state = read_state(tmp_path)
    assert state is not None and state["status"] == "failed"
    recorded = {name: (c["pid"], c["ticks"]) for name, c in state["components"].items()}
    assert recorded == {name: (None, None) for name in stack.infra_names}
    # `finops up` has ended (this test's process is no supervisor to stop); the OS gives one
    # of the numbers it recorded to somebody else's process: `finops down` leaves it alone.
    state["supervisor_pid"] = other.pid
    for component in state["components"].values():
        component["pid"] = other.pid
    (tmp_path / "stack.json").write_text(json.dumps(state))
    assert stop_recorded(tmp_path, timeout=1) == []
    assert other.poll() is None


def test_a_pid_recorded_without_its_start_time_is_not_signalled(tmp_path, other):
    # a state file written so (by the start above before the fix, or by a version before
    # start times were recorded): the number alone may be anyone's by now
    _state(tmp_path, other.pid, None)
    state = json.loads((tmp_path / "stack.json").read_text())
    state.update(supervisor_pid=other.pid, supervisor_ticks=None)
    (tmp_path / "stack.json").write_text(json.dumps(state))
    assert stop_recorded(tmp_path, timeout=1) == []
    assert other.poll() is None
    assert running_supervisor(tmp_path) is None
