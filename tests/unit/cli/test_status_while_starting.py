"""`finops status` while `finops up` is still starting the stack. The state file was written
once before the first component started, without pids, and again only once every component
was ready: status listed the components it had already started as ``down`` with no pid (and,
probing their ports, ``ready``), and those not yet started as ``down`` too, ready if anything
answered on their port.

The stack's processes are fakes that never get ready; `finops status` is asked between two
steps of the start (where the start asks whether to stop), once the first one runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.local_stack import Stack, StackSettings, StartInterrupted
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


def _fake(tmp_path: Path, name: str) -> Component:
    return Component(
        name,
        "infra",
        free_port(),
        log_file=tmp_path / "logs" / f"{name}.log",
        command=lambda: [sys.executable, "-c", "import time; time.sleep(600)"],
        ready_probe=lambda: False,
    )


def _rows(stdout: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells[1:]
        for cells in (
            [cell.strip() for cell in line.split("│")[1:-1]]
            for line in stdout.splitlines()
            if "│" in line
        )
        if cells and cells[0] != "component"
    }


def test_status_during_a_start_shows_the_started_ones_and_the_ones_still_to_start(
    tmp_path: Path,
) -> None:
    settings = StackSettings(data_dir=tmp_path, kafka_storage="memory", ready_timeout_s=60)
    stack = Stack(settings, infra_only=True, echo=lambda _line: None)
    stack.components = {name: _fake(tmp_path, name) for name in stack.infra_names}
    first, *rest = stack.components.values()
    seen: list[tuple[int, str]] = []

    def status_once_the_first_runs() -> bool:
        if first.process is None:
            return False
        result = CliRunner().invoke(
            app, ["status"], env={**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}, prog_name="finops"
        )
        seen.append((result.exit_code, result.stdout))
        return True  # then stop the start

    with pytest.raises(StartInterrupted):
        stack.start(should_stop=status_once_the_first_runs)

    [(code, stdout)] = seen
    rows = _rows(stdout)
    assert rows[first.name] == ["up", str(first.pid), str(first.port), "unreachable", "0"]
    for comp in rest:  # not started: no pid, and nothing probed
        assert rows[comp.name] == ["starting", "-", str(comp.port), "-", "0"]
    assert "the stack is starting: `finops up` has not finished" in stdout
    assert "supervisor" not in stdout  # this process, alive: no warning that it is gone
    assert code == 1
