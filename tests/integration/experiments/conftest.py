from __future__ import annotations

import pytest
from lab import ExperimentsLab


@pytest.fixture
async def lab(infra_env, tmp_path):
    lab = ExperimentsLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.close()
