"""A service whose event intake dies of something its own retries do not cover ends its
process, and the stack starts it again: here the experiments schema is taken one migration
back under the running stack (its intake then fails on a column that is gone), and the
service is ready again once the schema is back at head, without a `down` / `up`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cli_stack import finops, stack_log_tails, url_of, wait_for

pytestmark = pytest.mark.e2e


def restarts(env: dict[str, str], name: str) -> int:
    state = json.loads((Path(env["FINOPS_DATA_DIR"]) / "stack.json").read_text())
    return int(state["components"][name]["restarts"])


def ready(env: dict[str, str], name: str) -> bool:
    try:
        return httpx.get(f"{url_of(env, name)}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_intake_failing_on_a_schema_behind_restarts_its_service_until_mended(stack_env):
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr + stack_log_tails(stack_env)
    try:
        assert restarts(stack_env, "experiments") == 0
        back = finops("db", "downgrade", "exp0003", env=stack_env)
        assert back.returncode == 0, back.stdout + back.stderr
        wait_for(
            lambda: restarts(stack_env, "experiments") >= 1,
            90,
            "the experiments service to end and be started again",
            stack_env,
        )
        log = (Path(stack_env["FINOPS_DATA_DIR"]) / "logs" / "experiments.log").read_text()
        assert "the event intake failed (UndefinedColumnError" in log
        assert "ending the process so that it is started again" in log
        forward = finops("db", "upgrade", env=stack_env)
        assert forward.returncode == 0, forward.stdout + forward.stderr
        wait_for(lambda: ready(stack_env, "experiments"), 120, "experiments ready", stack_env)
        for other in ("optimizer", "healer", "ingest", "auth"):
            assert restarts(stack_env, other) == 0, other
    finally:
        down = finops("down", env=stack_env)
        assert down.returncode == 0, down.stdout + down.stderr
