"""`finops up --detach`, `status`, crash restart and `down`, run as a user would."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import pytest
from cli_stack import COMPONENTS, finops, wait_for
from headless_chromium import painted_charts

from finops.cli.report.store import LAST_RUN
from finops.cli.stack.process import pid_alive

pytestmark = pytest.mark.e2e


def test_detached_stack_restarts_crashes_and_leaves_nothing_behind(stack_env):
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
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


def test_demo_runs_the_fleet_writes_a_report_with_every_chart_and_stops_everything(
    stack_env, tmp_path
):
    reports = tmp_path / "reports"
    result = finops(
        "demo",
        "--calls",
        "300",
        "--agents",
        "2",
        "--reports",
        str(reports),
        env=stack_env,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = " ".join(result.stdout.split())
    assert "demo: every component is up and the fleet ran end to end" in out
    # 300 tasks are mostly the optimizer's first look at every model: the saving may be
    # negative this early (test_simulate.py asserts the default run's figures)
    assert re.search(r"saving -?\d+\.\d% · quality ratio \d\.\d+ · healed", out), out[-2000:]
    assert ", 0 lost" in out
    state = json.loads((Path(stack_env["FINOPS_DATA_DIR"]) / "stack.json").read_text())
    assert state["status"] == "stopped"
    assert not any(pid_alive(c["pid"]) for c in state["components"].values())
    (written,) = reports.glob("finops-report-*.html")
    assert f"report: {written.resolve()}" in out

    _, charts = painted_charts(written, tmp_path)
    assert len(charts) == 5
    assert all(c.width > 600 and c.painted_share > 0.02 for c in charts), charts

    # the same stack, up again: `finops report` rebuilds the report from the run it kept,
    # with the platform's figures read from the services now
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        again = finops("report", "--out", str(tmp_path / "again.html"), env=stack_env)
    finally:
        down = finops("down", env=stack_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert down.returncode == 0, down.stderr
    html = (tmp_path / "again.html").read_text()
    assert "The platform now" in html
    kept = json.loads((Path(stack_env["FINOPS_DATA_DIR"]) / LAST_RUN).read_text())["result"]
    calls = re.search(r"<th>fleet spend</th><td class='value'>[^<]*</td><td>([\d,]+) calls", html)
    # the optimizer's figures survived the restart: every answered call of the run, once
    assert calls and int(calls.group(1).replace(",", "")) == kept["answered"], html[-3000:]
    assert html.count("<figure class='chart'") == 5
