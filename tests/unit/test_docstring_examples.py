"""Every docstring example of libs/common, of the agent SDK (libs/client), of the `finops`
command (libs/cli) and of every service runs and holds, including those of modules no other
test imports (found by walking the packages, so a new example is run without a test naming its
module)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import finops.auth
import finops.cli
import finops.client
import finops.common
import finops.experiments
import finops.healer
import finops.ingest
import finops.optimizer

PACKAGES = (
    finops.common,
    finops.client,
    finops.cli,
    finops.auth,
    finops.ingest,
    finops.optimizer,
    finops.healer,
    finops.experiments,
)


def modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if info.ispkg or ".migrations." in info.name:
                continue
            spec = importlib.util.find_spec(info.name)
            if spec is not None and spec.origin and ">>>" in Path(spec.origin).read_text():
                found.append(info.name)
    return sorted(found)


MODULES = modules_with_examples()


def test_the_examples_are_found() -> None:
    # the SDK's too: its names' refusal (_names) was run by no test
    assert {
        "finops.common.errors",
        "finops.healer.domain.remedies",
        "finops.client._names",
        "finops.client._json_values",
        # the optimizer's: its spend detector's example was run by no test, and had gone stale
        "finops.optimizer.domain.anomaly",
        "finops.experiments.domain.conclusions",
        "finops.cli.stack.process",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_a_module_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
