from __future__ import annotations

import pytest
from lab import ExperimentsLab


@pytest.fixture
async def lab(infra_env, tmp_path):
    lab = ExperimentsLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.close()


@pytest.fixture(scope="module")
async def module_lab(infra, tmp_path_factory):
    """A lab shared by a module's tests, for tests that do not need topics of their own."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in infra.env().items():
            env.setenv(key, value)
        lab = ExperimentsLab(infra, tmp_path_factory.mktemp("experiments-lab"))
    await lab.setup()
    yield lab
    await lab.close()
