"""`finops experiments validate`: simulated A/A, A/B and SRM runs through the live analysis."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from finops.cli.main import app


def test_validate_prints_figures_within_their_bounds_and_the_settings_used() -> None:
    runs = 60
    result = CliRunner().invoke(app, ["experiments", "validate", "--runs", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    alpha = figures["settings"]["analysis"]["alpha"]
    assert figures["settings"]["runs"] == runs and figures["settings"]["seed"] == 0
    # Loose bounds for 60 runs: three Monte-Carlo standard errors above alpha.
    assert (
        figures["aa_false_positive_rate"] <= alpha + 3 * figures["aa_false_positive_rate_mc_error"]
    )
    assert figures["ab_power"] >= 0.8
    assert figures["srm_detection_rate"] >= 0.9
    assert (
        100
        < figures["mean_samples_to_decision"]
        < figures["settings"]["simulation"]["events_per_run"]
    )


def test_validate_is_reproducible_for_a_seed() -> None:
    runner = CliRunner()
    first = json.loads(
        runner.invoke(app, ["experiments", "validate", "--runs", "5", "--json"]).stdout
    )
    again = json.loads(
        runner.invoke(app, ["experiments", "validate", "--runs", "5", "--json"]).stdout
    )
    first.pop("elapsed_s"), again.pop("elapsed_s")
    assert first == again
