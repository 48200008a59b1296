"""`finops demo --calls 0` only brings the stack up and down (docs/demo.md): it says so, not
that the fleet ran end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.table import Table
from typer.testing import CliRunner

from finops.cli.commands import stack as stack_commands
from finops.cli.main import app

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


class _Stack:
    """A stack whose start and stop only note that they happened."""

    done: list[str] = []

    def __init__(self, settings: Any, **_kwargs: Any) -> None:
        self.root = settings.data_dir.resolve()

    def start(self) -> None:
        self.done.append("start")

    def stop(self) -> None:
        self.done.append("stop")

    def write_state(self, status: str) -> None:
        pass


def test_demo_with_no_calls_says_the_stack_only_came_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_commands, "Stack", _Stack)
    monkeypatch.setattr(_Stack, "done", [])
    monkeypatch.setattr(stack_commands, "status_table", lambda _root: (Table(), True))
    monkeypatch.setattr(stack_commands, "use_demo_service_settings", lambda: None)

    demo = CliRunner().invoke(
        app, ["demo", "--calls", "0"], env={**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}
    )

    assert demo.exit_code == 0, demo.output
    assert demo.stdout.splitlines()[-1] == (
        "demo: every component is up and ready; with --calls 0 no fleet runs, so the stack"
        " stops now"
    )
    assert "fleet ran" not in demo.stdout
    assert _Stack.done == ["start", "stop"]
