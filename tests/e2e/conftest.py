"""Fixtures for tests that run a whole local stack through the `finops` command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_stack import COMPONENTS

from finops.cli.stack import free_port


@pytest.fixture
def stack_env(stack_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
    env["FINOPS_DATA_DIR"] = str(stack_dir)
    env["COLUMNS"] = "200"
    for name in COMPONENTS:
        env[f"FINOPS_{name.upper()}_PORT"] = str(free_port())
    return env
