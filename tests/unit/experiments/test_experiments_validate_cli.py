"""`finops experiments validate`: simulated A/A, A/B and SRM runs through the live analysis."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from finops.cli.main import app
from finops.experiments.domain.decision import AnalysisSettings
from finops.experiments.domain.simulation import SimulationSettings, simulated_stats, validate


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


def test_the_table_names_every_figure_in_words_with_its_json_key() -> None:
    plain = {"TTY_COMPATIBLE": "0", "NO_COLOR": "1", "COLUMNS": None}  # piped: full width
    result = CliRunner().invoke(app, ["experiments", "validate", "--runs", "5"], env=plain)
    assert result.exit_code == 0, result.output
    rows = {
        cells[-1]: cells[0]
        for line in result.stdout.splitlines()
        if (cells := [c.strip() for c in line.split("│")[1:-1]]) and cells[-1]
    }
    figures = json.loads(
        CliRunner().invoke(app, ["experiments", "validate", "--runs", "5", "--json"]).stdout
    )
    # every figure of --json is a row, labelled in words rather than by its key
    assert set(rows) - {"as --json names it"} == set(figures) - {"settings"}
    assert rows["ab_power"] == "A/B, 10% lower cost per success: found (power)"
    assert all(label != key for key, label in rows.items())
    # the settings as name=value lines, not a JSON dump
    assert "analysis: metric=cost_per_success, alpha=0.05," in result.stdout


def test_a_simulated_quality_experiments_failures_report_no_quality() -> None:
    # every simulated call reported a quality, so the rule that counts a failure without one
    # at 0 (metric quality) was never exercised by the simulations
    sim = SimulationSettings(events_per_run=2000)
    quality = AnalysisSettings(metric="quality")
    control, treatment = simulated_stats(
        np.random.default_rng(0), sim, quality, effect=0.0, treatment_share=0.5
    )
    for s in (control, treatment):
        failures = int(s.n[-1] - s.successes[-1])
        assert failures > 0 and int(s.unrated_failures[-1]) == failures
        assert int(s.quality_n[-1]) == int(s.successes[-1])
    # on the cost metrics every call reports one, as before (the printed figures unchanged)
    control, _ = simulated_stats(
        np.random.default_rng(0), sim, AnalysisSettings(), effect=0.0, treatment_share=0.5
    )
    assert int(control.unrated_failures[-1]) == 0 and control.quality_n[-1] == control.n[-1]
    figures = validate(runs=20, sim=sim, analysis=quality)
    assert (
        figures["aa_false_positive_rate"] <= 0.05 + 3 * figures["aa_false_positive_rate_mc_error"]
    )
