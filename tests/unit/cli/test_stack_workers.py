"""`finops up --optimizer-workers N`: what the stack would start (nothing is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finops.cli.failures import explain
from finops.cli.stack.local_stack import Stack, StackSettings


def services_of(stack: Stack) -> dict[str, dict[str, str]]:
    return {c.name: c.env for c in stack.components.values() if c.kind == "service"}


def test_one_optimizer_worker_learns_unpartitioned(tmp_path: Path) -> None:
    services = services_of(Stack(StackSettings(data_dir=tmp_path)))
    assert sorted(services) == ["auth", "experiments", "healer", "ingest", "optimizer"]
    assert "FINOPS_PARTITIONED_LEARNING" not in services["optimizer"]


def test_three_optimizer_workers_learn_partitioned_on_ports_of_their_own(tmp_path: Path) -> None:
    stack = Stack(StackSettings(data_dir=tmp_path, optimizer_workers=3, optimizer_port=18003))
    services = services_of(stack)
    workers = ["optimizer", "optimizer-2", "optimizer-3"]
    assert [n for n in services if n.startswith("optimizer")] == workers
    assert {services[w]["FINOPS_PARTITIONED_LEARNING"] for w in workers} == {"true"}
    ports = [int(services[w]["FINOPS_PORT"]) for w in workers]
    assert ports[0] == 18003 and len(set(ports)) == 3
    assert [stack.components[w].port for w in workers] == ports
    assert stack.components["optimizer-2"].log_file == tmp_path.resolve() / "logs/optimizer-2.log"
    assert stack.components["optimizer-2"].command()[-1] == "finops.optimizer"
    assert "FINOPS_PARTITIONED_LEARNING" not in services["healer"]


@pytest.mark.parametrize("workers", [0, 7])
def test_more_workers_than_learning_partitions_or_none_are_refused(
    tmp_path: Path, workers: int
) -> None:
    with pytest.raises(ValidationError, match="optimizer_workers"):
        StackSettings(data_dir=tmp_path, optimizer_workers=workers)


def test_a_bad_workers_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_OPTIMIZER_WORKERS", "9")
    with pytest.raises(ValidationError) as raised:
        StackSettings()
    failure = explain(raised.value)
    assert failure is not None
    assert failure.message == "FINOPS_OPTIMIZER_WORKERS=9: Input should be less than or equal to 6"
    assert failure.code == 2
