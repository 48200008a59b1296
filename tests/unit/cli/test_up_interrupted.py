"""Ctrl-C or SIGTERM while `finops up` starts the stack in the foreground stops what it had
started and ends the command (128 + the signal: 130 for Ctrl-C). It used to be noted only
once every component was ready, after minutes of waiting for one that never was.

The stack's processes are fakes that never get ready: the start waits for them until a stop
is asked for (or its readiness timeout, which a start that ignores the signal reaches)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import wait_for

from finops.cli.stack.local_stack import Stack, StackSettings, StartInterrupted
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component, pid_alive

#: `finops up` whose infrastructure is processes that say they started (their pid in a file
#: of the data folder) and never get ready
FAKE_INFRA_UP = """
import sys
from finops.cli.stack import infra
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component

def fake(self, name):
    started = self.root / f"{name}.pid"
    code = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(600)"
    )
    return Component(
        name,
        "infra",
        free_port(),
        log_file=self.root / "logs" / f"{name}.log",
        command=lambda: [sys.executable, "-c", code],
        ready_probe=lambda: False,
    )

infra.LocalInfra.component = fake
from finops.cli.main import app
app(prog_name="finops")
"""

PLAIN = {"TTY_COMPATIBLE": "0", "NO_COLOR": "1", "COLUMNS": "200"}


#: the fakes FAKE_INFRA_UP starts, each writing its pid to ``<name>.pid`` in the data folder
FAKE_NAMES = ("postgres", "redis", "broker", "kafka")


def interrupt_a_start(
    tmp_path: Path, script: str, args: list[str], signum: int
) -> tuple[subprocess.Popen[str], str, str, list[int]]:
    """Run ``finops`` as ``script`` with ``args`` on fakes that never get ready, send it
    ``signum`` once every fake runs, and wait for it: the command, its output, error output
    and the fakes' pids."""
    env = {
        **os.environ,
        **PLAIN,
        "FINOPS_DATA_DIR": str(tmp_path),
        "FINOPS_KAFKA_STORAGE": "memory",  # postgres, redis, broker, kafka
        # what a start that ignores the signal reaches instead (exit 2)
        "FINOPS_READY_TIMEOUT_S": "60",
    }
    up = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_files = [tmp_path / f"{name}.pid" for name in FAKE_NAMES]
    try:
        wait_for(lambda: all(p.exists() and p.read_text() for p in pid_files), 30, "the fakes")
        pids = [int(p.read_text()) for p in pid_files]
        up.send_signal(signum)  # to the command only, as a terminal's Ctrl-C
        out, err = up.communicate(timeout=30)  # well before the readiness timeout
    finally:
        up.kill()
        up.wait()
    return up, out, err, pids


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_waiting_for_readiness_stops_what_started(
    tmp_path: Path, signum: int, code: int
) -> None:
    up, out, err, pids = interrupt_a_start(tmp_path, FAKE_INFRA_UP, ["up", "--infra-only"], signum)

    assert (up.returncode, err) == (code, ""), out
    for name, pid in zip(FAKE_NAMES, pids, strict=True):
        assert f"stopping {name} (pid {pid})" in out
        assert not pid_alive(pid)
    assert out.rstrip().endswith("stopped before the stack was ready.")
    assert json.loads((tmp_path / "stack.json").read_text())["status"] == "stopped"


def _fake(tmp_path: Path, name: str) -> Component:
    return Component(
        name,
        "infra",
        free_port(),
        log_file=tmp_path / "logs" / f"{name}.log",
        command=lambda: [sys.executable, "-c", "import time; time.sleep(600)"],
        ready_probe=lambda: False,
    )


def test_a_stop_between_steps_starts_nothing_more(tmp_path: Path) -> None:
    settings = StackSettings(data_dir=tmp_path, kafka_storage="memory", ready_timeout_s=60)
    stack = Stack(settings, infra_only=True, echo=lambda _line: None)
    stack.components = {name: _fake(tmp_path, name) for name in stack.infra_names}
    first, *rest = stack.components.values()

    # asked to stop once the first component runs: the next step is not taken
    with pytest.raises(StartInterrupted):
        stack.start(should_stop=lambda: first.process is not None)

    assert first.process is not None and first.process.poll() is not None  # stopped
    assert [comp.process for comp in rest] == [None] * len(rest)  # never started


#: `finops up --detach` whose background supervisor is FAKE_INFRA_UP's
FAKE_DETACHED_UP = f"""
import sys
from finops.cli import main
from finops.cli.commands import up
up._detached_command = lambda infra_only: [
    sys.executable, "-c", {FAKE_INFRA_UP!r}, "up", "--infra-only"
]
main.app(prog_name="finops")
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_a_detached_start_waits_stops_the_background_start(
    tmp_path: Path, signum: int, code: int
) -> None:
    """The supervisor runs in a session of its own, out of reach of the terminal's Ctrl-C: the
    waiting command passes the stop on. It used to end and leave the start going on."""
    up, out, err, pids = interrupt_a_start(
        tmp_path, FAKE_DETACHED_UP, ["up", "--detach", "--infra-only"], signum
    )

    assert (up.returncode, err) == (code, ""), out
    assert "stopped before the stack was ready" in out
    assert [pid for pid in pids if pid_alive(pid)] == []
    log = (tmp_path / "logs" / "stack.log").read_text()
    assert log.rstrip().endswith("stopped before the stack was ready.")
    assert json.loads((tmp_path / "stack.json").read_text())["status"] == "stopped"


#: a background supervisor that notes it was asked to stop (SIGTERM) and goes on regardless
STUBBORN_SUPERVISOR = """
import os, pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (folder / "asked.txt").write_text("stop"))
(folder / "supervisor.pid").write_text(str(os.getpid()))
while True:
    time.sleep(0.1)
"""

STUBBORN_DETACHED_UP = f"""
import os, sys
from finops.cli import main
from finops.cli.commands import up
up._detached_command = lambda infra_only: [
    sys.executable, "-c", {STUBBORN_SUPERVISOR!r}, os.environ["FINOPS_DATA_DIR"]
]
main.app(prog_name="finops")
"""


def test_a_second_ctrl_c_stops_waiting_for_a_stop_that_does_not_end(tmp_path: Path) -> None:
    """The first Ctrl-C asks the supervisor to stop; it went on waiting for it, and every
    further Ctrl-C was swallowed."""
    env = {**os.environ, **PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}
    up = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_DETACHED_UP, "up", "--detach", "--infra-only"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    supervisor_pid = tmp_path / "supervisor.pid"
    try:
        wait_for(lambda: supervisor_pid.exists() and supervisor_pid.read_text(), 30, "started")
        up.send_signal(signal.SIGINT)
        wait_for(lambda: (tmp_path / "asked.txt").exists(), 30, "the stop passed on")
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=30)
        pid = int(supervisor_pid.read_text())
        assert pid_alive(pid)  # it was left to its stop
    finally:
        up.kill()
        up.wait()
        if supervisor_pid.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(supervisor_pid.read_text()), signal.SIGKILL)

    assert (up.returncode, err) == (130, ""), out
    assert f"still stopping (supervisor pid {pid})" in " ".join(out.split())
