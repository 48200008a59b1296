"""`finops up`'s supervisor and a service that refused its settings (exit status 2): started
again with the same environment it would fail the same way, so it is left down, marked failed
with its last error, which `finops status` shows; other exits are still restarted."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.ports import free_port
from finops.cli.stack.process import Component

REFUSED = "error: FINOPS_REDIS_PORT=0: Input should be greater than or equal to 1"
PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


def _service(tmp_path: Path, name: str, code: int, line: str) -> Component:
    script = f"import sys; print({line!r}, file=sys.stderr); sys.exit({code})"
    return Component(
        name,
        "service",
        free_port(),
        log_file=tmp_path / "logs" / f"{name}.log",
        command=lambda: [sys.executable, "-c", script],
    )


def _supervise_until(stack: Stack, done: Callable[[], bool], limit_s: float = 120) -> None:
    """Supervise until ``done()``; the limit only keeps a broken supervisor from hanging the
    test (it fails then, on ``done()`` not holding)."""
    until = time.monotonic() + limit_s
    stack.supervise(lambda: done() or time.monotonic() > until, lambda: stack.write_state("ready"))
    assert done(), "the supervisor never got there"


def test_a_service_that_refused_its_settings_is_not_restarted(tmp_path: Path) -> None:
    lines: list[str] = []
    stack = Stack(StackSettings(data_dir=tmp_path), infra_only=True, echo=lines.append)
    refused = _service(tmp_path, "ingest", 2, REFUSED)
    crashed = _service(tmp_path, "healer", 1, "RuntimeError: a bug hit once")
    stack.components = {"ingest": refused, "healer": crashed}
    for comp in stack.components.values():
        comp.start()
        assert comp.process is not None
        comp.process.wait(10)

    # until the crashed one was restarted and the refused one marked: whichever comes first,
    # the refused one has had as long as the crashed one to be (wrongly) restarted
    _supervise_until(stack, lambda: crashed.restarts >= 1 and refused.failed is not None)
    crashed.stop()

    assert refused.restarts == 0 and refused.process is not None
    assert refused.process.returncode == 2  # the first run's: never started again
    assert refused.failed == (
        "exited with code 2: FINOPS_REDIS_PORT=0: Input should be greater than or equal to 1"
    )
    said = [line for line in lines if line.startswith("ingest")]
    assert len(said) == 1 and "not restarting it" in said[0] and "FINOPS_REDIS_PORT=0" in said[0]
    # another exit is still restarted with backoff
    assert crashed.restarts >= 1 and crashed.failed is None

    state = json.loads((tmp_path / "stack.json").read_text())
    assert state["components"]["ingest"]["failed"] == refused.failed
    assert state["components"]["healer"]["failed"] is None
    status = CliRunner().invoke(
        app, ["status"], env={**PLAIN, "FINOPS_DATA_DIR": str(tmp_path)}, prog_name="finops"
    )
    assert status.exit_code == 1
    rows = {
        cells[0].strip(): cells[1].strip()
        for cells in (line.split("│")[1:3] for line in status.stdout.splitlines() if "│" in line)
        if cells
    }
    assert rows["ingest"] == "failed" and rows["healer"] == "down"
    assert (
        "ingest exited with code 2: FINOPS_REDIS_PORT=0: Input should be greater than or equal"
        " to 1 — not restarted" in " ".join(status.stdout.split())
    )


def test_up_and_demo_refuse_a_bad_common_setting_before_starting_anything(tmp_path):
    # FINOPS_LOG_LEVEL was first read once PostgreSQL, Redis and the broker were up, which
    # were then stopped again; with --detach the error was pydantic's, on four lines.
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path), "FINOPS_LOG_LEVEL": "verbose"}
    line = (
        "error: FINOPS_LOG_LEVEL=verbose: "
        "Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"
    )
    for args in (["up"], ["up", "--detach"], ["demo", "--calls", "0"]):
        result = CliRunner().invoke(app, args, env=env, prog_name="finops")
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n"), args
        assert list(tmp_path.iterdir()) == [], args  # no state, no logs: nothing started


def test_status_counts_every_restart_not_only_those_in_a_row(tmp_path: Path) -> None:
    # an operator killed a service twice, each time after it had run for over a minute:
    # `finops status` said "1" after the second restart (the backoff's count, reset by a
    # minute's run, was the column); the backoff still starts over, the count does not
    lines: list[str] = []
    stack = Stack(StackSettings(data_dir=tmp_path), infra_only=True, echo=lines.append)
    killed = _service(tmp_path, "experiments", 1, "killed")
    stack.components = {"experiments": killed}
    killed.start()
    for restart in (1, 2):
        assert killed.process is not None
        killed.process.wait(10)
        killed.started_at -= 61  # it had run for over a minute
        _supervise_until(
            stack, lambda n=restart: sum("restarted (restart #" in line for line in lines) >= n
        )
    assert killed.process is not None
    killed.process.wait(10)
    assert [line for line in lines if "restarting in" in line] == [
        "experiments exited with code 1; restarting in 0.5s",
        "experiments exited with code 1; restarting in 0.5s",
    ]
    assert [line.split("(")[1].split(",")[0] for line in lines if "restarted" in line] == [
        "restart #1",
        "restart #2",
    ]
    state = json.loads((tmp_path / "stack.json").read_text())
    assert state["components"]["experiments"]["restarts"] == 2
