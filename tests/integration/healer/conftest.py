"""Fixtures of the healer's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from circuit_lab import CircuitLab


@pytest.fixture
async def lab(infra_env: Any, tmp_path: Any) -> AsyncIterator[CircuitLab]:
    """Circuit-breaker topics of the test's own, a producer and the checkpoint store."""
    lab = CircuitLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.close()
