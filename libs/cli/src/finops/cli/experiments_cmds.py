"""`finops experiments …`: checks of the experiments' statistics."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finops.cli.typer_app import FinopsTyper

console = Console()
experiments_app = FinopsTyper(help="Automated cost A/B tests.")


@experiments_app.command()
def validate(
    runs: Annotated[int, typer.Option(min=1, help="Simulated experiments of each kind.")] = 500,
    seed: Annotated[int, typer.Option(min=0, help="Seeds every simulated run.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
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
    for key, value in result.items():
        if key != "settings":
            table.add_row(key, "-" if value is None else f"{value:.4g}")
    console.print(table)
    console.print_json(data=result["settings"])


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
