"""`finops backtest`: the optimizer's routing policy replayed over an outcomes file."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from finops.cli.failures import CliError
from finops.cli.out_paths import check_file_to_write
from finops.cli.output import console
from finops.cli.output import err_console as err
from finops.cli.typer_app import JsonOption

if TYPE_CHECKING:
    from finops.optimizer.domain.backtest import Outcomes

OUTCOME_COLUMNS = (
    "prompt_id, task_type, model, quality, cost_usd[, input_tokens, output_tokens, prompt]"
)
PLOT_FORMATS = (".png", ".svg", ".pdf")


def _progress(unit: str) -> Progress:
    """A bar on stderr while a terminal watches; nothing when stderr is piped."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn(f"{{task.completed:,}}/{{task.total:,}} {unit}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _load(data: Path) -> Outcomes:
    """The outcomes file, or one line saying why it is not one."""
    from finops.optimizer.adapters.outcome_files import load_outcomes

    try:
        outcomes = load_outcomes(data)
    except KeyError as exc:
        raise CliError(
            f"{data} is not an outcomes CSV: it has no {exc.args[0]} column "
            f"(columns: {OUTCOME_COLUMNS})",
            2,
        ) from exc
    except (ValueError, csv.Error, EOFError, OSError) as exc:
        raise CliError(
            f"{data} is not an outcomes CSV ({exc}); columns: {OUTCOME_COLUMNS}", 2
        ) from exc
    if not outcomes.prompts:
        raise CliError(f"{data} holds no outcomes (columns: {OUTCOME_COLUMNS})", 2)
    return outcomes


def _check_writable(plot: Path) -> None:
    """Refuse a plot path that cannot be written before the replay, not after it."""
    if plot.suffix.lower() not in PLOT_FORMATS:
        raise CliError(f"--plot {plot}: give a {', '.join(PLOT_FORMATS)} file", 2)
    check_file_to_write("--plot", plot)


def backtest(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Outcomes file (.csv or .csv.gz): prompt_id, task_type, model, quality "
            "(0 to 1), cost_usd (0 to 1,000,000), and optional input_tokens, output_tokens, "
            "prompt; one row per prompt and model, every prompt with every model.",
            exists=True,
            dir_okay=False,
        ),
    ],
    quality_target: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Overall quality to keep, relative to the best single model.",
        ),
    ] = 0.95,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the replay order and the policy.")] = 0,
    json_out: JsonOption = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the cost-quality frontier (several targets) to this file "
            "(.png, .svg or .pdf)."
        ),
    ] = None,
) -> None:
    """Replay history through the live routing policy with bandit feedback, and report.

    Prompts are replayed in a seeded random order; for each, the policy picks one model and
    sees only that model's outcome. The report compares the policy with the best single
    model and the per-prompt oracle.
    """
    started = time.perf_counter()
    if plot is not None:
        _check_writable(plot)
    outcomes = _load(data)
    result = _replay(outcomes, quality_target, seed)
    # the replay's time (with the file's loading), and the frontier plot's apart: its runs
    # of every target take several times the replay's
    elapsed = time.perf_counter() - started
    timing = f"{elapsed:.1f}s"
    if plot is not None:
        _draw_frontier(data, plot, seed, outcomes)
        total = time.perf_counter() - started
        timing = f"replay {elapsed:.1f}s, frontier plot {total - elapsed:.1f}s, {total:.1f}s in all"
    if json_out:
        print(json.dumps(result))
        return
    _print_backtest(result, f"backtest of {data.name} (target {quality_target}, seed {seed})")
    console.print(
        f"quality ratio {result['quality_ratio']:.4f} · saving {result['saving']:.1%} · "
        f"{result['prompts']:,} prompts, {len(result['models'])} models · {timing}"
    )
    if plot is not None:
        console.print(f"frontier plot: {plot}")


def _replay(outcomes: Outcomes, quality_target: float, seed: int) -> dict[str, Any]:
    """The backtest's result (:func:`~finops.optimizer.domain.backtest.run_backtest`), with a
    progress bar while a terminal watches."""
    from finops.optimizer.domain.backtest import run_backtest

    with _progress("prompts") as bar:
        task = bar.add_task("replaying", total=len(outcomes.prompts))

        def progress(done: int, total: int, metrics: dict[str, float]) -> None:
            bar.update(task, completed=done, total=total, refresh=True)

        return run_backtest(outcomes, quality_target, seed, progress=progress, progress_every=500)


def _print_backtest(result: dict[str, Any], title: str) -> None:
    """The policy beside the two references it is judged against: the best single model
    (what routing must beat on cost) and the per-prompt oracle (what no policy can beat)."""
    table = Table(title=title)
    table.add_column("", no_wrap=True)
    table.add_column("quality", justify="right")
    table.add_column("cost per prompt", justify="right")
    table.add_row(
        f"best single model ({result['best_model']})",
        f"{result['best_quality']:.4f}",
        f"${result['best_cost_per_prompt']:.6f}",
    )
    table.add_row(
        "routing policy",
        f"{result['policy_quality']:.4f}",
        f"${result['policy_cost_per_prompt']:.6f}",
    )
    table.add_row(
        "oracle (cheapest correct model per prompt)",
        f"{result['oracle_quality']:.4f}",
        f"${result['oracle_cost_per_prompt']:.6f}",
    )
    console.print(table)


def _draw_frontier(data: Path, plot: Path, seed: int, outcomes: Outcomes) -> None:
    from finops.optimizer.adapters.frontier_plot import plot_frontier
    from finops.optimizer.domain.backtest import DEFAULT_TARGETS

    runs = len(DEFAULT_TARGETS)
    prompts = len(outcomes.prompts)
    finished = 0
    with _progress("prompts") as bar:
        task = bar.add_task(f"frontier plot: {runs} targets", total=runs * prompts)

        def progress(done: int, total: int, metrics: dict[str, float]) -> None:
            nonlocal finished
            if done == total:
                finished, done = finished + 1, 0
            bar.update(task, completed=finished * total + done, refresh=True)

        plot_frontier(outcomes, plot, seed=seed, label=data.name, progress=progress)


def register(app: typer.Typer) -> None:
    app.command()(backtest)
