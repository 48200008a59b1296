"""Every service names a misspelt ``FINOPS_*`` variable in its log at start-up, with the setting
it most resembles, as the `finops` command does: a service started by compose or Kubernetes
with ``FINOPS_KAFKA_ACK=1`` silently kept ``acks=all``. The services are started the way their
``python -m finops.<service>`` starts them (:func:`finops.common.runner.serve`), uvicorn left
out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from finops.auth.app import create_app as auth_app
from finops.auth.settings import AuthSettings
from finops.common import runner
from finops.experiments.app import create_app as experiments_app
from finops.experiments.settings import ExperimentsSettings
from finops.healer.app import create_app as healer_app
from finops.healer.settings import HealerSettings
from finops.ingest.app import create_app as ingest_app
from finops.ingest.settings import IngestSettings
from finops.optimizer.app import create_app as optimizer_app
from finops.optimizer.settings import OptimizerSettings

SERVICES: dict[str, tuple[Callable[..., Any], Any]] = {
    "auth": (auth_app, AuthSettings),
    "ingest": (ingest_app, IngestSettings),
    "optimizer": (optimizer_app, OptimizerSettings),
    "healer": (healer_app, HealerSettings),
    "experiments": (experiments_app, ExperimentsSettings),
}
MISSPELT = "FINOPS_KAFKA_ACK is not a setting (did you mean FINOPS_KAFKA_ACKS?); it is ignored"


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """serve() routes the root logger to stdout; the suite's handlers come back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_logs_a_misspelt_variable_at_start_up(monkeypatch, capsys, tmp_path, service):
    create_app, settings_class = SERVICES[service]
    served = []
    monkeypatch.setattr(runner.uvicorn, "run", lambda app, **options: served.append(app))
    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINOPS_KAFKA_ACK", "1")
    monkeypatch.setenv("FINOPS_KAFKA_ACKS", "all")  # a real one: not warned about
    monkeypatch.setenv("FINOPS_BREAKER_COOLDOWN_S", "30")  # the healer's: known fleet-wide

    runner.serve(create_app, settings_class)

    assert len(served) == 1  # it went on to serve
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warned = [r for r in records if r["logger"] == "finops.settings"]
    assert [(r["level"], r["message"]) for r in warned] == [("WARNING", MISSPELT)]
    assert warned[0]["service"] == settings_class().service_name


def test_a_service_that_refuses_its_settings_prints_the_warning_above_its_error(
    monkeypatch, capsys
):
    monkeypatch.setenv("FINOPS_KAFKA_ACK", "1")
    monkeypatch.setenv("FINOPS_LOG_LEVEL", "LOUD")

    with pytest.raises(SystemExit) as exited:
        runner.serve(ingest_app, IngestSettings)

    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"warning: {MISSPELT}"
    assert lines[1].startswith("error: FINOPS_LOG_LEVEL=LOUD")
    assert len(lines) == 2
