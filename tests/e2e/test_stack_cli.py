"""`finops up --detach`, `status`, crash restart and `down`, run as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from cli_stack import COMPONENTS, finops, fresh_env, wait_for

from finops.cli.process import pid_alive

pytestmark = pytest.mark.e2e


def test_detached_stack_restarts_crashes_and_leaves_nothing_behind(stack_env):
    started = time.monotonic()
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert time.monotonic() - started < 90
    for name in COMPONENTS:
        assert name in up.stdout

    status = finops("status", env=stack_env)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" ready ") >= len(COMPONENTS)

    state_path = Path(stack_env["FINOPS_DATA_DIR"]) / "stack.json"
    state = json.loads(state_path.read_text())
    pids = {n: c["pid"] for n, c in state["components"].items()}
    pids["supervisor"] = state["supervisor_pid"]
    assert all(pid_alive(p) for p in pids.values())

    os.kill(pids["ingest"], signal.SIGKILL)

    def restarted():
        info = json.loads(state_path.read_text())["components"]["ingest"]
        return info["restarts"] >= 1 and info["pid"] != pids["ingest"] and info

    info = wait_for(restarted, 30, "ingest to be restarted")
    wait_for(lambda: finops("status", env=stack_env).returncode == 0, 60, "all ready again")
    pids["ingest-restarted"] = info["pid"]
    assert (
        "ingest restarted"
        in (Path(stack_env["FINOPS_DATA_DIR"]) / "logs" / "stack.log").read_text()
    )

    down = finops("down", env=stack_env)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not any(pid_alive(p) for p in pids.values()), 30, "every process to exit")
    ports = [int(stack_env[f"FINOPS_{n.upper()}_PORT"]) for n in COMPONENTS]
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    assert finops("status", env=stack_env).returncode == 1


def test_a_taken_port_is_named_in_a_clear_error(stack_env):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        stack_env["FINOPS_REDIS_PORT"] = str(port)
        result = finops("up", "--infra-only", env=stack_env, timeout=60)
    assert result.returncode == 2
    assert f"port {port} (redis) is already in use" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout


def test_demo_runs_the_fleet_end_to_end_and_stops_everything(stack_env):
    result = finops("demo", "--calls", "300", env=stack_env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = " ".join(result.stdout.split())
    assert "demo: every component is up and the fleet ran end to end" in out
    assert "308 events ingested" in out
    state = json.loads((Path(stack_env["FINOPS_DATA_DIR"]) / "stack.json").read_text())
    assert state["status"] == "stopped"
    assert not any(pid_alive(c["pid"]) for c in state["components"].values())


def demo_figures(stdout: str) -> list[str]:
    """What a demo run reports: its two tables' rows (picks per task type, spend by model)
    and this run's totals."""
    lines = [" ".join(line.split()) for line in stdout.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("what the optimizer"))
    table = [line for line in lines[start:] if line.startswith("│")]
    totals = [line for line in lines if line.startswith("this run:")]
    return table + totals


def test_two_demo_runs_from_a_clean_start_print_the_same_figures(stack_dir):
    figures = []
    for run in ("first", "second"):
        result = finops("demo", "--calls", "200", env=fresh_env(stack_dir / run), timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        figures.append(demo_figures(result.stdout))
    assert len(figures[0]) == 4 + 2 + 1  # task types, models, this run's totals
    assert "208 events ingested" in figures[0][-1]
    assert figures[0] == figures[1]
