"""`finops up` finds the s3rver `make install` put in the checkout's `.tools/` when it is run
from a folder outside the checkout (and the data folder is outside it too), instead of saying
that s3rver is not installed."""

from __future__ import annotations

from pathlib import Path

from finops.cli.stack import infra_processes
from finops.cli.stack.settings import StackSettings


def test_s3rver_of_the_checkout_is_found_from_another_folder(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    installed = checkout / ".tools" / "s3rver" / "node_modules" / ".bin" / "s3rver"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\n")
    module = checkout / "libs" / "cli" / "src" / "finops" / "cli" / "stack" / "infra_processes.py"
    module.parent.mkdir(parents=True)
    module.write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(infra_processes, "__file__", str(module))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    data = tmp_path / "data" / "stack"
    found = infra_processes.s3rver_bin(StackSettings(data_dir=data), data)

    assert Path(found) == installed.resolve()
