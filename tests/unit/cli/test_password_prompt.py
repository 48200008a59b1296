"""`finops users create` without a terminal to ask for the password on says how to pass it."""

from __future__ import annotations

import os
import subprocess
import sys

ARGS = ("users", "create", "--username", "alice", "--email", "alice@example.com")


def test_without_a_terminal_or_a_password_it_says_to_use_password_stdin():
    # A new session has no controlling terminal: /dev/tty cannot be opened, as in CI or
    # `docker run` without -t. The password is missing before any database is needed.
    result = subprocess.run(
        [sys.executable, "-m", "finops.cli", *ARGS],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        env={**os.environ, "TTY_COMPATIBLE": "0", "NO_COLOR": "1"},
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: no terminal to ask for the password on: give it on stdin with --password-stdin\n"
    )
