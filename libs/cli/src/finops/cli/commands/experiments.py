"""`finops experiments …`: checks of the experiments' statistics."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from finops.cli.output import console
from finops.cli.typer_app import FinopsTyper, JsonOption

experiments_app = FinopsTyper(help="Automated cost A/B tests.")


#: each figure of ``finops experiments validate``: what it measures, and the bound its issue
#: sets ("" where it sets none); docs/experiments.md has the same table. The labels name the
#: simulation's effect and split as its settings say.
FIGURES: dict[str, tuple[str, str]] = {
    "aa_false_positive_rate": ("A/A: a winner declared (false positive)", "<= alpha + MC error"),
    "aa_false_positive_rate_mc_error": ("  its Monte Carlo error", ""),
    "aa_guardrail_stop_rate": ("A/A: stopped by a guardrail", ""),
    "aa_srm_false_alarm_rate": ("A/A: sample ratio mismatch flagged (false alarm)", ""),
    "ab_power": ("A/B, {effect:.0%} lower cost per success: found (power)", ">= 0.8"),
    "ab_wrong_winner_rate": ("A/B: the dearer variant declared", ""),
    "mean_samples_to_decision": ("A/B: events to a decision (mean)", ""),
    "srm_detection_rate": ("{srm_split} split declared 50/50: mismatch flagged", ">= 0.9"),
    "srm_runs_decided": ("{srm_split} split: runs that reached a decision anyway", ""),
    "elapsed_s": ("seconds this simulation took", ""),
}


@experiments_app.command()
def validate(
    runs: Annotated[int, typer.Option(min=1, help="Simulated experiments of each kind.")] = 500,
    seed: Annotated[int, typer.Option(min=0, help="Seeds every simulated run.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """Simulate A/A, A/B and SRM experiments through the live analysis, looking after every
    event, and print the false-positive rate, power, samples to decision and SRM detection.
    """
    from finops.experiments.domain.simulation import validate as run_validation

    started = time.perf_counter()
    result = run_validation(runs=runs, seed=seed)
    result["elapsed_s"] = round(time.perf_counter() - started, 2)
    if json_out:
        print(json.dumps(result))
        return
    table = Table(
        title=f"{runs} simulated runs of each kind, seed {seed}, a look after every event"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("done when")
    table.add_column("as --json names it", style="dim")
    settings = result["settings"]
    simulated = settings["simulation"]
    share = round(100 * simulated["srm_actual_share"])
    named = {"effect": simulated["effect"], "srm_split": f"{100 - share}/{share}"}
    for key, value in result.items():
        if key != "settings":
            label, bound = FIGURES.get(key, (key, ""))
            value_text = "-" if value is None else f"{value:.4g}"
            table.add_row(label.format(**named), value_text, bound, key)
    console.print(table)
    for part in ("analysis", "simulation"):
        console.print(
            f"{part}: " + ", ".join(f"{k}={v}" for k, v in settings[part].items()),
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
