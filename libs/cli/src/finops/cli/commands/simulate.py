"""``finops simulate``: a simulated fleet against a running stack, compared with a baseline."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops.cli.failures import START_STACK, CliError, given, reach_hint
from finops.cli.output import console, err_console
from finops.cli.typer_app import JsonOption
from finops.client import FinOpsError

if TYPE_CHECKING:
    from finops.cli.simulation_driver.platform import Endpoints
    from finops.cli.simulation_driver.run import SimulationReport

T = TypeVar("T")


def simulate(
    agents: Annotated[int, typer.Option(min=1, max=50, help="Agents in the fleet.")] = 4,
    calls: Annotated[int, typer.Option(min=100, help="Tasks the fleet works through.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the tasks and every draw.")] = 42,
    json_out: JsonOption = False,
) -> None:
    """Run a simulated fleet through the SDK against the running stack and compare it with a
    baseline (the strongest model, naive retries) over the same tasks, draws and faults.

    The agents follow the optimizer's recommendations, heal provider errors, take part in two
    experiments the simulator starts (a cheaper variant and an A/A), and report every call and
    error. Faults: a rate-limit storm, a provider outage, context overflows, malformed output,
    refused prompts and one model's quality drifting mid-run. See docs/simulator.md.
    The run's result and timeline stay in the stack's folder for `finops report`.
    """
    from finops.cli.simulation_driver.platform import Endpoints

    endpoints = Endpoints.from_environment()
    report = run_with_progress(endpoints, agents=agents, calls=calls, seed=seed)
    keep_last_run(report)
    result = report.as_json()
    if json_out:
        print(json.dumps(result))
        return
    print_summary(result)


def run_with_progress(
    endpoints: Endpoints, *, agents: int, calls: int, seed: int
) -> SimulationReport:
    """The simulation under a progress bar (on a terminal); the platform's failures as one
    line saying what to do."""
    from finops.cli.simulation.faults import default_schedule
    from finops.cli.simulation_driver.run import run_simulation

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # a piped stderr gets no bar and no blank line
    ) as bar:
        job = bar.add_task("tasks", total=calls)
        try:
            return asyncio.run(
                cancelled_by_sigterm(
                    run_simulation(
                        endpoints,
                        agents=agents,
                        calls=calls,
                        seed=seed,
                        schedule=default_schedule(),
                        progress=lambda: bar.advance(job),
                        warn=lambda line: err_console.print(f"warning: {line}", markup=False),
                    )
                )
            )
        except asyncio.CancelledError:  # SIGTERM: the run has stopped its experiments
            raise typer.Abort() from None
        except httpx.TransportError as exc:
            raise CliError(unreachable(endpoints, exc)) from exc
        except FinOpsError as exc:  # the SDK's own words say what to fix
            raise CliError(str(exc)) from exc


async def cancelled_by_sigterm(run: Coroutine[Any, Any, T]) -> T:
    """``run``, cancelled by SIGTERM as Ctrl-C cancels it (``asyncio.run``), so that its
    ``finally`` still runs: a simulation stops the experiments it started there. Without it
    SIGTERM ends the process at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def keep_last_run(report: SimulationReport) -> None:
    """Leave the run's result and timeline in the stack's folder for ``finops report``
    (when the folder is there: a simulation against a remote stack keeps nothing)."""
    from finops.cli.report import store
    from finops.cli.stack.settings import StackSettings

    data_dir = StackSettings().data_dir.resolve()
    if data_dir.is_dir():
        store.save(data_dir, store.LastRun(report.as_json(), report.timeline))


def unreachable(endpoints: Any, exc: httpx.TransportError) -> str:
    """``cannot reach the <service> service at <url> — <what to do>``."""
    try:
        url = str(exc.request.url)
    except RuntimeError:  # an error raised before any request was made
        return f"cannot reach the platform ({exc!r}) — {START_STACK}"
    for name, base in endpoints.urls.items():
        if url.startswith(base.rstrip("/")):
            url_variable = f"FINOPS_{name.upper()}_URL"
            hint = _services_missing_hint(url_variable) or reach_hint(
                url_variable, f"FINOPS_{name.upper()}_PORT"
            )
            return f"cannot reach the {name} service at {base} — {hint}"
    return f"cannot reach {url} — {START_STACK}"


def _services_missing_hint(url_variable: str) -> str | None:
    """What to do when the stack of this data folder, which the service's address comes from
    (``url_variable`` not set), runs without its services (``finops up --infra-only``): `finops
    up --detach` would refuse, a stack is running; None for any other stack, or none."""
    from finops.cli.stack.settings import StackSettings
    from finops.cli.stack.state import runs_without_services, stack_command

    root = StackSettings().data_dir.resolve()
    if given(url_variable) or not runs_without_services(root):
        return None
    return (
        f"the stack running from {root} has no services (started with --infra-only): start"
        " the service if you run the services yourself, or stop the stack with"
        f" `{stack_command(root, 'down')}` and start it whole with"
        f" `{stack_command(root, 'up --detach')}`"
    )


def print_summary(result: dict[str, Any]) -> None:
    from finops.cli.simulation.drift_findings import DriftFindings

    table = Table(
        title=f"{result['calls']:,} tasks, {result['agents']} agents, seed {result['seed']}: "
        "optimized fleet vs baseline (strongest model, naive retries)"
    )
    table.add_column("figure", no_wrap=True)
    table.add_column("baseline", justify="right")
    table.add_column("optimized", justify="right")
    table.add_row(
        "spend", f"${result['baseline_cost_usd']:.4f}", f"${result['optimized_cost_usd']:.4f}"
    )
    table.add_row(
        "mean quality", f"{result['baseline_quality']:.3f}", f"{result['optimized_quality']:.3f}"
    )
    table.add_row("answered", str(result["baseline_answered"]), str(result["answered"]))
    table.add_row("errors", str(result["baseline_errors"]), str(result["errors"]))
    table.add_row(
        "recoverable errors healed",
        f"{result['baseline_healed']}/{result['baseline_recoverable_errors']}",
        f"{result['healed']}/{result['recoverable_errors']}",
    )
    console.print(table)
    console.print(
        f"saving {result['saving']:.1%} · quality ratio {result['quality_ratio']:.3f} · "
        f"healed {result['healed_ratio']:.1%} · {result['events_sent']:,} events sent, "
        f"{result['lost_events']} lost · {result['elapsed_s']} s"
    )
    for exp in result["experiments"]:
        promoted = "promoted" if exp["promoted"] else "not promoted"
        if exp.get("pin_lifted"):
            promoted += ", then unpinned by a drift of the winner (see finops.alerts.v1)"
        elif exp["promoted"] and exp.get("pinned_at_end") is False:
            promoted += ", not recommended at the end " + (
                "(the alerts could not be read)"
                if exp.get("pin_lifted") is None
                else "(no drift alert of the run lifted its pin)"
            )
        console.print(
            f"experiment {exp['name']} ({exp['kind']}): {exp['decision']}, winner "
            f"{exp['winner'] or '-'}, {promoted}, samples {exp['samples']}, fallbacks "
            f"{exp.get('fallbacks') or [0] * len(exp['samples'])}"
            + (f" ({exp['reason']})" if exp["reason"] else ""),
            markup=False,
        )
    drift = DriftFindings.from_json(result)
    for line in drift.summary_lines() if drift is not None else []:
        console.print(line, markup=False)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
