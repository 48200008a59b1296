"""Fixtures for tests that run a whole local stack through the `finops` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_stack import fresh_env


@pytest.fixture
def stack_env(stack_dir: Path) -> dict[str, str]:
    return fresh_env(stack_dir)
