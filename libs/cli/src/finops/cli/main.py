"""The ``finops`` command: run the local stack and operate the platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from finops.cli.db_cmds import db_app
from finops.cli.demo import DEMO_AGENTS, DEMO_CALLS, use_demo_service_settings
from finops.cli.failures import CliError, explain, fill_in
from finops.cli.out_paths import check_folder_to_make
from finops.cli.output import console, err_console
from finops.cli.ports import FREE_PORTS_ENV, check_bind_host, parse_port_range
from finops.cli.stack import Stack, StackError, StackSettings, StartInterrupted
from finops.cli.stack_state import (
    is_starting,
    mark_stopped,
    probe_component,
    read_state,
    record_failed_start,
    running_supervisor,
    stack_command,
    state_path,
    stop_recorded,
)
from finops.cli.typer_app import FinopsTyper
from finops.cli.users_cmds import keys_app, users_app
from finops.common.settings import CommonSettings, known_settings, unknown_settings
from finops.common.topics import OPTIMIZER_EVENTS

app = FinopsTyper(help="Meta-Agent FinOps: run the local stack and operate the platform.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

#: Commands that run the stack itself: they read its settings, not a client's addresses.
_STACK_COMMANDS = frozenset({"up", "down", "status", "demo"})
#: what `finops down` and `finops status` say when the stack is stopped
NO_STACK_RUNNING = "no stack is running."


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        console.print(f"finops {version('finops-cli')}")
        raise typer.Exit()


@app.callback()
def _client_addresses(
    ctx: typer.Context,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operator commands reach the stack on the ports it was started with
    (``FINOPS_<COMPONENT>_PORT``) unless a ``FINOPS_*_URL`` says otherwise."""
    for line in unknown_settings(os.environ, known_settings()):
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", line))
    if ctx.invoked_subcommand in _STACK_COMMANDS:
        return
    fill_in(StackSettings().client_addresses())  # an error names what the user set, not these


def _status_table(root: Path) -> tuple[Table, bool]:
    state = read_state(root)
    table = Table(title=f"finops stack ({root})")
    table.add_column("component", no_wrap=True)
    for col in ("state", "pid", "port", "readiness", "restarts"):
        table.add_column(col)
    all_ready = bool(state)
    if not state:
        return table, False
    starting = is_starting(root, state)
    for name, info in state["components"].items():
        if starting and not info.get("external") and not info.get("pid"):
            # `finops up` has not started it yet: whatever answers on its port is not it
            table.add_row(name, "starting", "-", str(info["port"]), "-", "0")
            all_ready = False
            continue
        alive, readiness = probe_component(name, info)
        if info.get("external"):
            state_txt, pid_txt = "external", "-"
        else:
            state_txt, pid_txt = ("up" if alive else "down"), str(info.get("pid") or "-")
            if info.get("failed") and not alive:  # the supervisor no longer starts it
                state_txt = "failed"
        all_ready &= alive and readiness in ("ready", "external")
        table.add_row(
            name,
            state_txt,
            pid_txt,
            str(info["port"]) if not info.get("external") else info["external"],
            readiness,
            str(info.get("restarts", 0)),
        )
    return table, all_ready


def _stack_settings() -> StackSettings:
    """The stack's settings, and the common ones the stack itself reads (its topics, its
    broker) checked with them, before anything starts: a bad FINOPS_LOG_LEVEL was found only
    once the infrastructure was up, which was then stopped again."""
    settings = StackSettings()
    # as the stack's services get them: its own broker's settings win over the environment
    if settings.kafka_bootstrap is None:
        CommonSettings(kafka_enable_idempotence=False)
    else:
        CommonSettings()
    # where the stack draws the ports it picks itself; a detached start read it only in the
    # supervisor, whose error reached stack.log alone
    free_ports = os.environ.get(FREE_PORTS_ENV)
    if free_ports is not None:
        parse_port_range(free_ports)
    check_bind_host(settings.bind_host)
    return settings


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start in the background and return.")
    ] = False,
    infra_only: Annotated[
        bool,
        typer.Option("--infra-only", help="Only PostgreSQL, Redis and the broker; no services."),
    ] = False,
    optimizer_workers: Annotated[
        int | None,
        typer.Option(
            "--optimizer-workers",
            min=1,
            max=OPTIMIZER_EVENTS.partitions,
            help="Optimizer workers; more than one learn partitioned by task type, each "
            "answering for every task type (default: see above).",
        ),
    ] = None,
) -> None:
    """Start the local stack: PostgreSQL, Redis, the Kafka-protocol broker and the services.

    Creates every topic, applies migrations, waits until each component is ready and prints
    what runs where. In the foreground, Ctrl-C stops everything; with --detach use
    `finops down`. Crashed services are restarted with backoff, except one that refused its
    settings (exit status 2), which would fail the same way: `finops status` shows it failed.

    With --optimizer-workers 2 or more (default: FINOPS_OPTIMIZER_WORKERS, else 1), the
    optimizer workers split its learning partitions and each serves every task type
    (docs/optimizer.md, "Scaling out").
    """
    if optimizer_workers is not None and infra_only:
        raise CliError(
            "--optimizer-workers has no effect with --infra-only, which starts no service"
            " (see `finops up --help`)",
            2,
        )
    if optimizer_workers is not None:
        # read by this process's settings and by a detached supervisor's
        os.environ["FINOPS_OPTIMIZER_WORKERS"] = str(optimizer_workers)
    settings = _stack_settings()
    root = settings.data_dir.resolve()
    running = running_supervisor(root)
    if running:
        raise CliError(
            f"a stack is already running (supervisor pid {running});"
            f" see `{stack_command(root, 'status')}`",
            2,
        )
    if detach:
        _up_detached(root, infra_only)
    else:
        _up_foreground(settings, infra_only)


def _up_foreground(settings: StackSettings, infra_only: bool) -> None:
    """Start the stack in this process and supervise it until SIGTERM or Ctrl-C.

    Either signal during the start-up stops what was started, and the command exits 128 +
    the signal's number (130 for Ctrl-C) as the start did not finish."""
    stop_signal: int | None = None

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_signal
        stop_signal = stop_signal or signum

    def stop_requested() -> bool:
        return stop_signal is not None

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = time.monotonic()
    stack: Stack | None = None

    def record_failure(error: str) -> None:
        if stack is None:  # it failed drawing its own ports (FINOPS_FREE_PORTS), say
            record_failed_start(settings.data_dir.resolve(), error)
        else:
            stack.write_state("failed", error)

    try:
        stack = Stack(settings, infra_only=infra_only, echo=lambda line: console.print(f"• {line}"))
        stack.root.mkdir(parents=True, exist_ok=True)
        stack.write_state("starting")
        stack.start(stop_requested)
    except StartInterrupted:
        if stack is not None:  # start() stopped what it had started
            stack.write_state("stopped")
        console.print("stopped before the stack was ready.")
        raise typer.Exit(128 + (stop_signal or signal.SIGINT)) from None
    except StackError as exc:
        record_failure(str(exc))
        raise CliError(str(exc), 2) from exc
    except Exception as exc:
        # the line the user is shown (`finops up --detach` prints it), not a traceback's
        known = explain(exc)
        record_failure(known.message if known else f"{type(exc).__name__}: {exc}")
        raise
    stack.write_state("ready")
    console.print(f"stack ready in {time.monotonic() - started:.1f}s")
    console.print(_status_table(stack.root)[0])
    if not os.environ.get("FINOPS_DETACHED"):
        console.print("Ctrl-C stops everything.")
    try:
        stack.supervise(stop_requested, lambda: stack.write_state("ready"))
    finally:
        console.print("stopping the stack…")
        stack.stop()
        stack.write_state("stopped")
        console.print("stopped.")


def _detached_command(infra_only: bool) -> list[str]:
    """The supervisor `finops up --detach` starts in a session of its own."""
    return [sys.executable, "-m", "finops.cli", "up"] + (["--infra-only"] if infra_only else [])


def _up_detached(root: Path, infra_only: bool) -> None:
    """Start the supervisor in the background and wait until its stack is ready.

    Ctrl-C or SIGTERM while waiting stops the start too: the supervisor runs in a session of
    its own, so a terminal's Ctrl-C reaches only this process, which passes the stop on and
    waits for what had started to be stopped (exit 130, or 143)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    log_path = root / "logs" / "stack.log"
    state_path(root).unlink(missing_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            _detached_command(infra_only),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "FINOPS_DETACHED": "1", "COLUMNS": "120"},
        )
    signals: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        signals.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        with console.status("starting the stack…"):
            _wait_until_ready(root, proc, log_path, lambda: bool(signals))
        if signals:
            _stop_detached_start(proc, log_path, signals)
            raise typer.Exit(128 + signals[0])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print(f"stack ready in {time.monotonic() - started:.1f}s (supervisor pid {proc.pid})")
    console.print(_status_table(root)[0])
    console.print(
        f"logs: {root / 'logs'}   stop with: {stack_command(root, 'down')}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def _stop_detached_start(proc: subprocess.Popen[bytes], log_path: Path, signals: list[int]) -> None:
    """Ask the detached supervisor to stop what it started, and wait until it has; a second
    Ctrl-C (or SIGTERM) stops the waiting, not the supervisor's stop."""
    proc.send_signal(signal.SIGTERM)
    with console.status("stopping the stack that was starting… (Ctrl-C again: stop waiting)"):
        while proc.poll() is None and len(signals) < 2:
            time.sleep(0.2)
    if proc.poll() is None:
        console.print(
            f"still stopping (supervisor pid {proc.pid}); see {log_path} and"
            f" `{stack_command(log_path.parents[1], 'status')}`",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    else:
        console.print(f"stopped before the stack was ready (log: {log_path}).")


def _wait_until_ready(
    root: Path, proc: subprocess.Popen[bytes], log_path: Path, stop_requested: Callable[[], bool]
) -> None:
    """Until the detached supervisor says its stack is ready, or a stop is asked for here."""
    while not stop_requested():
        state = read_state(root)
        status = state.get("status") if state else None
        if status == "ready":
            return
        if status == "stopped":  # its supervisor was asked to stop (`finops down`)
            raise CliError("the stack was stopped before it was ready", 1)
        if status == "failed" or proc.poll() is not None:
            detail = state.get("error") if state else None
            raise CliError(f"the stack did not start: {detail or 'see ' + str(log_path)}", 2)
        time.sleep(0.3)


@app.command()
def down() -> None:
    """Stop a detached stack and every process it started."""
    root = StackSettings().data_dir.resolve()
    if not read_state(root):
        # most likely the wrong folder: a plain `no stack is running.` hid the one that runs
        console.print(
            f"no stack has been started here (no {state_path(root)}), so none is stopped; a"
            " stack started with another FINOPS_DATA_DIR stops with that one set"
            " (`FINOPS_DATA_DIR=<its folder> finops down`).",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        return
    stopped = stop_recorded(root)
    mark_stopped(root)
    if not stopped:
        console.print(NO_STACK_RUNNING)
        return
    for line in stopped:
        console.print(f"stopped {line}")


@app.command()
def status() -> None:
    """One line per component: up/down, pid, port, readiness, restarts since `finops up`.
    Exit 1 unless all are ready.

    A stack that was stopped (`finops down`) is one line, as `finops down` says it: no stack
    is running.
    """
    root = StackSettings().data_dir.resolve()
    state = read_state(root)
    if not state:
        console.print(
            f"no stack has been started here (no {state_path(root)}); a stack started with"
            " another FINOPS_DATA_DIR shows with that one set."
        )
        raise typer.Exit(1)
    if state.get("status") == "stopped":  # its pids are stale: nothing to list
        console.print(NO_STACK_RUNNING)
        raise typer.Exit(1)
    if state.get("status") == "failed" and running_supervisor(root) is None:
        # a start that failed stopped what it had started: its pids are stale too
        console.print(
            f"no stack is running: the last start failed: {state.get('error')}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    table, all_ready = _status_table(root)
    console.print(table)
    for name, info in state["components"].items():
        if info.get("failed"):
            console.print(
                f"{name} {info['failed']} — not restarted; fix it, then"
                f" `{stack_command(root, 'down')}` and `{stack_command(root, 'up')}`",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
    if is_starting(root, state):
        console.print(
            "the stack is starting: `finops up` has not finished (a component it has not"
            " started yet shows `starting`)",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif running_supervisor(root) is None:
        # killed (kill -9) or gone with a reboot: what is left runs unsupervised
        console.print(
            f"the supervisor (pid {state.get('supervisor_pid')}) is not running: nothing"
            " restarts a component that stops; run"
            f" `{stack_command(root, 'down')}`, then `{stack_command(root, 'up')}`",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        all_ready = False
    raise typer.Exit(0 if all_ready else 1)


@app.command()
def demo(
    calls: Annotated[
        int,
        typer.Option(
            help="Tasks the simulated fleet works through: at least 100, or 0 to only bring "
            "the stack up."
        ),
    ] = DEMO_CALLS,
    agents: Annotated[int, typer.Option(min=1, max=50, help="Agents in the fleet.")] = DEMO_AGENTS,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the tasks and every draw.")] = 42,
    reports: Annotated[
        Path, typer.Option(help="Folder the HTML report is written to.", file_okay=False)
    ] = Path("reports"),
) -> None:
    """Run the whole platform on the embedded local stack, then shut it down.

    Brings every component up and checks that each one is ready, then the whole-fleet
    simulation (`finops simulate`) runs on it: an operator and agent accounts with API keys,
    agents following the optimizer, healing provider errors, taking part in two experiments,
    under injected faults, compared with a baseline over the same tasks. Prints the summary,
    writes a self-contained HTML report with charts to REPORTS/finops-report-TIME.html and
    says where. The stack is stopped whether the run succeeds or fails.
    """
    if calls < 0 or 0 < calls < 100:
        raise CliError("--calls: 0 (only bring the stack up) or at least 100", 2)
    if calls:
        check_folder_to_make("--reports", reports)
    settings = _stack_settings()
    root = settings.data_dir.resolve()
    if running_supervisor(root):
        raise CliError(
            f"a stack is already running here; `{stack_command(root, 'down')}` first, or use it"
            " directly",
            2,
        )
    use_demo_service_settings()
    stack = Stack(settings, echo=lambda line: console.print(f"• {line}"))
    started = time.monotonic()
    try:
        stack.root.mkdir(parents=True, exist_ok=True)
        stack.write_state("starting")
        stack.start()
        stack.write_state("ready")
        console.print(f"stack ready in {time.monotonic() - started:.1f}s")
        table, all_ready = _status_table(root)
        console.print(table)
        if not all_ready:
            raise CliError("not every component is ready", 2)
        if calls:
            from finops.cli.demo import run_demo

            run_demo(stack, calls=calls, agents=agents, seed=seed, reports=reports)
            console.print("[bold green]demo: every component is up and the fleet ran end to end[/]")
        else:
            console.print(
                "[bold green]demo: every component is up and ready; with --calls 0 no fleet"
                " runs, so the stack stops now[/]"
            )
    except StackError as exc:
        raise CliError(str(exc), 2) from exc
    finally:
        stack.stop()
        stack.write_state("stopped")


if __name__ == "__main__":
    app()


def _register_operator_commands() -> None:
    from finops.cli import (
        experiments_cmds,
        ops,
        optimizer_cmds,
        report_cmd,
        reprice_cmd,
        simulate_cmd,
    )

    ops.register(app)
    optimizer_cmds.register(app)
    experiments_cmds.register(app)
    reprice_cmd.register(app)
    simulate_cmd.register(app)
    report_cmd.register(app)


_register_operator_commands()
