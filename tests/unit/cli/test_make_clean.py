"""`make clean` stops a stack still running from .finops/ before removing the folder: removed
under it, the stack kept its processes and every port, and no `finops` command found it again
(`finops status`: no stack has been started here; `finops up`: the ports are in use)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finops.cli.stack.process import pid_alive, started_at_ticks

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _project(tmp_path: Path, with_venv: bool) -> Path:
    """A copy of the project's Makefile, with a `.venv/bin/finops` of this checkout or none."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    if with_venv:
        finops = project / ".venv" / "bin" / "finops"
        finops.parent.mkdir(parents=True)
        finops.write_text(f'#!/bin/sh\nexec {sys.executable} -m finops.cli "$@"\n')
        finops.chmod(0o755)
    return project


def _make_clean(project: Path) -> subprocess.CompletedProcess[str]:
    # another FINOPS_DATA_DIR in the shell: `make clean` removes .finops/, so it stops the
    # stack of .finops/, not that one's
    env = {**os.environ, "FINOPS_DATA_DIR": str(project / "elsewhere"), "NO_COLOR": "1"}
    return subprocess.run(
        ["make", "--no-print-directory", "clean"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_clean_stops_a_running_stack_before_removing_its_folder(tmp_path: Path) -> None:
    project = _project(tmp_path, with_venv=True)
    (project / ".finops").mkdir()
    # the stack's supervisor, as `finops down` finds it: a live process at its start time
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        state = {
            "status": "ready",
            "supervisor_pid": supervisor.pid,
            "supervisor_ticks": started_at_ticks(supervisor.pid),
            "components": {},
        }
        (project / ".finops" / "stack.json").write_text(json.dumps(state))

        clean = _make_clean(project)

        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert f"stopped supervisor (pid {supervisor.pid})" in clean.stdout
        assert not pid_alive(supervisor.pid)
        assert not (project / ".finops").exists()
    finally:
        supervisor.kill()
        supervisor.wait()


def test_make_clean_without_anything_installed_removes_the_folder(tmp_path: Path) -> None:
    project = _project(tmp_path, with_venv=False)
    (project / ".finops" / "logs").mkdir(parents=True)
    (project / ".finops" / "stack.json").write_text("{}")

    clean = _make_clean(project)

    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not (project / ".finops").exists()
