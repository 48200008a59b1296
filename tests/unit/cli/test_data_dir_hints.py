"""The commands `finops up`, `status` and `demo` tell you to run name the stack's data folder
when it is not the default one: after `FINOPS_DATA_DIR=elsewhere finops up --detach`, the
plain `finops down` it printed said `no stack is running.` and stopped nothing."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finops.cli.commands import up as up_command
from finops.cli.main import app
from finops.cli.stack.process import started_at_ticks

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


class _Supervisor:
    """A detached supervisor that is ready at once (nothing is started)."""

    def __init__(self, root: Path) -> None:
        self.pid = os.getpid()
        state = {"status": "ready", "supervisor_pid": self.pid, "components": {}}
        (root / "stack.json").write_text(json.dumps(state))

    def poll(self) -> None:
        return None


@pytest.mark.parametrize("default_folder", [True, False])
def test_up_detached_says_how_to_stop_the_stack_of_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_folder: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    root = (tmp_path / ".finops") if default_folder else (tmp_path / "tf" / "dd")
    monkeypatch.setattr(up_command.subprocess, "Popen", lambda *_a, **_k: _Supervisor(root))
    env: dict[str, Any] = {**PLAIN, "FINOPS_DATA_DIR": None if default_folder else "tf/dd"}

    up = CliRunner().invoke(app, ["up", "--detach", "--infra-only"], env=env)

    assert up.exit_code == 0, up.output
    down = "finops down" if default_folder else f"FINOPS_DATA_DIR={root} finops down"
    assert up.stdout.splitlines()[-1] == f"logs: {root / 'logs'}   stop with: {down}"


def test_a_running_stack_and_a_failed_service_name_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "my stack"
    root.mkdir()
    me = os.getpid()  # a live supervisor: this test's process, at its start time
    failed = {
        "kind": "service",
        "pid": None,
        "host": "127.0.0.1",
        "port": 1,
        "failed": "exited with code 2: FINOPS_REDIS_PORT=0: Input should be at least 1",
    }
    state = {
        "status": "ready",
        "supervisor_pid": me,
        "supervisor_ticks": started_at_ticks(me),
        "components": {"healer": failed},
    }
    (root / "stack.json").write_text(json.dumps(state))
    env = {**PLAIN, "FINOPS_DATA_DIR": str(root)}
    lead = f"FINOPS_DATA_DIR={shlex.quote(str(root))} finops"

    up = CliRunner().invoke(app, ["up"], env=env)
    assert (up.exit_code, up.stderr) == (
        2,
        f"error: a stack is already running (supervisor pid {me}); see `{lead} status`\n",
    )
    demo = CliRunner().invoke(app, ["demo", "--calls", "0"], env=env)
    assert (demo.exit_code, demo.stderr) == (
        2,
        f"error: a stack is already running here; `{lead} down` first, or use it directly\n",
    )
    status = CliRunner().invoke(app, ["status"], env=env)
    assert (
        f"healer {failed['failed']} — not restarted; fix it, then `{lead} down` and `{lead} up`"
    ) in status.stdout.splitlines()
