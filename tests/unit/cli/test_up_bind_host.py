"""`finops up` and `finops demo` refuse a FINOPS_BIND_HOST this machine cannot listen on in one
line, before anything starts. Before, every port looked taken and drawing the broker's free
port tried each of the band's 16,384 ports (a name lookup each: minutes for a name that does
not resolve, while Ctrl-C and SIGTERM waited) and then ended in a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        # TEST-NET-1: an address of no machine of ours, refused without a name lookup
        ("192.0.2.1", "Cannot assign requested address"),
        ("::1", "Address family for hostname not supported"),
    ],
)
@pytest.mark.parametrize("args", [["up"], ["up", "--detach"], ["demo", "--calls", "0"]])
def test_a_host_that_cannot_be_listened_on_is_refused_before_anything_starts(
    tmp_path: Path, host: str, reason: str, args: list[str]
) -> None:
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path / "stack"), "FINOPS_BIND_HOST": host}
    result = CliRunner().invoke(app, args, env=env, prog_name="finops")

    assert result.exit_code == 2
    assert result.output == (
        f"error: FINOPS_BIND_HOST={host}: cannot listen on it ({reason}); give an IPv4"
        " address of this machine, such as 127.0.0.1\n"
    )
    assert not (tmp_path / "stack").exists()
