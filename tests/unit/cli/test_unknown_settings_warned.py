"""A misspelt ``FINOPS_*`` variable is named in a warning by every `finops` command (with the
setting it most resembles) instead of being silently ignored: `FINOPS_OPTIMZER_WORKERS=2
finops up` started one optimizer worker and said nothing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from finops.cli.main import app
from finops.common.settings import known_settings

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "NO_COLOR": "1", "COLUMNS": "200"}


def status(tmp_path: Path, **variables: str):
    env = {**PLAIN, "FINOPS_DATA_DIR": str(tmp_path), **variables}
    return CliRunner().invoke(app, ["status"], env=env, prog_name="finops")


def test_a_misspelt_setting_is_named_with_the_one_it_resembles(tmp_path: Path) -> None:
    result = status(tmp_path, FINOPS_OPTIMZER_WORKERS="2", FINOPS_NO_SUCH_THING="1")

    assert result.stderr.splitlines()[:2] == [
        "warning: FINOPS_NO_SUCH_THING is not a setting; it is ignored",
        "warning: FINOPS_OPTIMZER_WORKERS is not a setting (did you mean"
        " FINOPS_OPTIMIZER_WORKERS?); it is ignored",
    ]
    assert result.exit_code == 1  # the command itself still runs: no stack here


def test_settings_of_every_component_and_the_test_suites_are_not_warned_about(
    tmp_path: Path,
) -> None:
    result = status(
        tmp_path,
        FINOPS_OPTIMIZER_WORKERS="1",  # the stack's
        FINOPS_BREAKER_COOLDOWN_S="30",  # the healer's
        FINOPS_MAX_BATCH_EVENTS="10",  # ingest's
        FINOPS_FREE_PORTS="20000-24095",  # read outside the settings classes
        FINOPS_API_KEY="x",  # the SDK's
        FINOPS_TEST_CONTAINERS="0",  # the test suite's
        FINOPS_Breaker_Window_S="60",  # read whatever the case
    )

    assert "warning" not in result.stderr
    assert {"FINOPS_OPTIMIZER_WORKERS", "FINOPS_BREAKER_COOLDOWN_S"} <= known_settings()
