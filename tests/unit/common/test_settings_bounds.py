"""A number setting that is not finite, or out of its range, is refused at start-up (exit 2,
one line naming it) instead of being taken: ``nan`` never compares true, so a threshold, a
deadline or a backoff of ``nan`` was silently never reached (`finops up` with
``FINOPS_READY_TIMEOUT_S=nan`` waited for ever, a crashed service with
``FINOPS_RESTART_BACKOFF_MAX_S=nan`` was never restarted), and a negative interval made a
loop spin."""

from __future__ import annotations

import pydantic
import pytest

from finops.auth.settings import AuthSettings
from finops.cli.stack.settings import StackSettings
from finops.experiments.settings import ExperimentsSettings
from finops.healer.settings import HealerSettings
from finops.ingest.settings import IngestSettings
from finops.optimizer.settings import OptimizerSettings

REFUSED = [
    (StackSettings, "FINOPS_READY_TIMEOUT_S", "nan"),
    (StackSettings, "FINOPS_READY_TIMEOUT_S", "-1"),
    (StackSettings, "FINOPS_READY_TIMEOUT_S", "0"),
    (StackSettings, "FINOPS_RESTART_BACKOFF_MAX_S", "nan"),
    (StackSettings, "FINOPS_RESTART_BACKOFF_MAX_S", "-1"),
    (AuthSettings, "FINOPS_POSTGRES_CONNECT_TIMEOUT_S", "inf"),
    (AuthSettings, "FINOPS_JWKS_MIN_REFETCH_SECONDS", "nan"),
    (AuthSettings, "FINOPS_DB_POOL_MAX_SIZE", "0"),
    (AuthSettings, "FINOPS_MAX_BODY_BYTES", "-1"),
    (IngestSettings, "FINOPS_PUBLISH_TIMEOUT_S", "nan"),
    (IngestSettings, "FINOPS_PUBLISH_TIMEOUT_S", "-1"),
    (IngestSettings, "FINOPS_MAX_BATCH_EVENTS", "0"),
    (IngestSettings, "FINOPS_KAFKA_REQUEST_TIMEOUT_MS", "-1"),
    (OptimizerSettings, "FINOPS_CHECKPOINT_INTERVAL_S", "nan"),
    (OptimizerSettings, "FINOPS_CHECKPOINT_INTERVAL_S", "-1"),
    (OptimizerSettings, "FINOPS_CHECKPOINT_EVERY_EVENTS", "0"),
    (OptimizerSettings, "FINOPS_SNAPSHOT_INTERVAL_S", "0"),
    (OptimizerSettings, "FINOPS_FLEET_QUALITY_TARGET", "1.5"),
    (OptimizerSettings, "FINOPS_BREAKER_PROBE_RATE", "nan"),
    (HealerSettings, "FINOPS_BREAKER_FAILURE_THRESHOLD", "nan"),
    (HealerSettings, "FINOPS_BREAKER_FAILURE_THRESHOLD", "2"),
    (HealerSettings, "FINOPS_BREAKER_COOLDOWN_S", "-1"),
    (HealerSettings, "FINOPS_BREAKER_MIN_CALLS", "-1"),
    (HealerSettings, "FINOPS_FAUST_BROKER_SESSION_TIMEOUT_S", "inf"),
    (ExperimentsSettings, "FINOPS_REFRESH_INTERVAL_S", "nan"),
    (ExperimentsSettings, "FINOPS_CHECKPOINT_INTERVAL_S", "-1"),
]


@pytest.mark.parametrize(("settings", "variable", "value"), REFUSED)
def test_an_out_of_range_or_not_finite_number_is_refused(settings, variable, value, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError) as refused:
        settings()
    (error,) = refused.value.errors()
    assert error["loc"] == (variable.removeprefix("FINOPS_").lower(),)


@pytest.mark.parametrize(
    ("settings", "variable", "value"),
    [
        (StackSettings, "FINOPS_RESTART_BACKOFF_MAX_S", "0"),
        (AuthSettings, "FINOPS_JWKS_MIN_REFETCH_SECONDS", "0"),
        (IngestSettings, "FINOPS_KAFKA_LINGER_MS", "0"),
        (HealerSettings, "FINOPS_BREAKER_FAILURE_THRESHOLD", "1"),
        (OptimizerSettings, "FINOPS_FLEET_QUALITY_TARGET", "0.95"),
    ],
)
def test_the_bounds_themselves_are_taken_where_they_mean_something(
    settings, variable, value, monkeypatch
):
    monkeypatch.setenv(variable, value)
    assert settings() is not None


def test_the_finops_command_names_a_not_finite_setting_in_one_line(monkeypatch):
    from typer.testing import CliRunner

    from finops.cli.main import app

    monkeypatch.setenv("FINOPS_READY_TIMEOUT_S", "nan")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "FINOPS_READY_TIMEOUT_S=nan: Input should be a finite number" in result.output
