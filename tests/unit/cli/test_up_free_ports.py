"""`finops up` and FINOPS_FREE_PORTS, where the stack draws the ports it picks itself.

A malformed range is refused in one line before anything starts, with --detach too (it was
read only in the detached supervisor: `error: the stack did not start: see …/stack.log`). A
start that fails drawing its ports is a start that failed: `finops status` says so and why
(it said no stack had been started, the state file deleted and never written again).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.ports import FREE_PORTS_ENV, free_port

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


def invoke(root: Path, free_ports: str, *args: str):
    env = {**PLAIN, "FINOPS_DATA_DIR": str(root), FREE_PORTS_ENV: free_ports}
    return CliRunner().invoke(app, list(args), env=env, prog_name="finops")


@pytest.mark.parametrize("value", ["5-3", "abc", "20000-70000"])
@pytest.mark.parametrize("args", [["up"], ["up", "--detach"], ["demo", "--calls", "0"]])
def test_a_malformed_range_is_refused_before_anything_starts(
    tmp_path: Path, value: str, args: list[str]
) -> None:
    result = invoke(tmp_path, value, *args)
    line = (
        f"error: {FREE_PORTS_ENV}={value!r}: expected LOW-HIGH, two ports with"
        " 1024 <= LOW <= HIGH <= 65535 (e.g. 20000-24095)\n"
    )
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)
    assert list(tmp_path.iterdir()) == []  # no state, no logs: nothing started


@pytest.mark.parametrize("detach", [False, True])
def test_a_start_that_found_no_free_port_is_a_failed_start(tmp_path: Path, detach: bool) -> None:
    port = free_port()
    env = {
        **os.environ,
        **{k: v for k, v in PLAIN.items() if v is not None},
        "FINOPS_DATA_DIR": str(tmp_path),
        FREE_PORTS_ENV: f"{port}-{port}",
    }
    # a process of its own, as a user runs it: this one would be a live supervisor
    with socket.socket() as holder:  # the range's one port is taken: none left to draw
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        up = subprocess.run(
            [sys.executable, "-m", "finops.cli", "up", "--infra-only", *(["-d"] * detach)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    why = (
        f"no free port left in {FREE_PORTS_ENV}={port}-{port}"
        " (this process hands out none twice, nor one another process holds)"
    )
    said = f"the stack did not start: {why}" if detach else why
    assert (up.returncode, up.stderr) == (2, f"error: {said}\n")

    status = invoke(tmp_path, f"{port}-{port}", "status")
    assert (status.exit_code, status.stdout) == (
        1,
        f"no stack is running: the last start failed: {why}\n",
    )
