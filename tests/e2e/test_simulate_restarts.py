"""A simulation survives the optimizer and the healer each killed (``kill -9``) midway and
restarted by the stack: nothing acknowledged is lost and nothing is counted twice (issue 13)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_stack import finops, operator_token, url_of, wait_for

pytestmark = pytest.mark.e2e


def counted(env: dict[str, str], token: str) -> int:
    """Cost events the optimizer has counted (``/api/stats/summary``); 0 while it restarts."""
    try:
        resp = httpx.get(
            f"{url_of(env, 'optimizer')}/api/stats/summary",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError:
        return 0
    return int(resp.json()["events"]) if resp.status_code == 200 else 0


def component(env: dict[str, str], name: str) -> dict[str, object]:
    state = json.loads((Path(env["FINOPS_DATA_DIR"]) / "stack.json").read_text())
    return dict(state["components"][name])


def ready(env: dict[str, str], name: str) -> bool:
    try:
        return httpx.get(f"{url_of(env, name)}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def kill_and_wait_for_restart(env: dict[str, str], name: str) -> None:
    killed = component(env, name)["pid"]
    assert isinstance(killed, int)
    os.kill(killed, signal.SIGKILL)
    wait_for(
        lambda: component(env, name)["pid"] != killed and ready(env, name),
        240,
        f"the {name} to be restarted",
        env,
    )


def test_optimizer_and_healer_killed_midway_lose_nothing_and_count_each_call_once(stack_env):
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        _, token = operator_token(stack_env)
        # 1,000 tasks leave about 650 to run after 350 are counted: both kills land mid-run
        run = subprocess.Popen(
            [sys.executable, "-m", "finops.cli", "simulate", "--calls", "1000", "--agents", "2",
             "--seed", "5", "--json"],
            env=stack_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: counted(stack_env, token) >= 150, 300, "150 calls counted", stack_env)
            assert run.poll() is None, "the simulation ended before the optimizer was killed"
            kill_and_wait_for_restart(stack_env, "optimizer")
            wait_for(lambda: counted(stack_env, token) >= 350, 300, "350 calls counted", stack_env)
            assert run.poll() is None, "the simulation ended before the healer was killed"
            kill_and_wait_for_restart(stack_env, "healer")
            out, err = run.communicate(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        result = json.loads(out)
        assert result["lost_events"] == 0
        assert result["events_sent"] == result["errors"] + result["answered"]
        # each answered call is one cost event: the restarted optimizer counts each once
        wait_for(
            lambda: counted(stack_env, token) >= result["answered"],
            180,
            "the optimizer to count every answered call",
            stack_env,
        )
        assert counted(stack_env, token) == result["answered"]
        assert component(stack_env, "optimizer")["restarts"] == 1
        assert component(stack_env, "healer")["restarts"] == 1
    finally:
        down = finops("down", env=stack_env)
        assert down.returncode == 0, down.stdout + down.stderr
