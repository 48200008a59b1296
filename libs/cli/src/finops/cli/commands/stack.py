"""The commands that run the stack itself: ``finops up``, ``down``, ``status`` and ``demo``."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from finops.cli.commands.demo import DEMO_AGENTS, DEMO_CALLS, use_demo_service_settings
from finops.cli.commands.up import up_detached, up_foreground
from finops.cli.failures import CliError
from finops.cli.out_paths import check_folder_to_make
from finops.cli.output import console
from finops.cli.stack.local_stack import Stack, StackError, StackSettings
from finops.cli.stack.ports import FREE_PORTS_ENV, check_bind_host, parse_port_range
from finops.cli.stack.state import (
    is_starting,
    mark_stopped,
    read_state,
    running_supervisor,
    stack_command,
    state_path,
    status_table,
    stop_recorded,
)
from finops.common.settings import CommonSettings
from finops.common.topics import OPTIMIZER_EVENTS

#: Commands that run the stack itself: they read its settings, not a client's addresses.
STACK_COMMANDS = frozenset({"up", "down", "status", "env", "demo"})
#: what `finops down` and `finops status` say when the stack is stopped
NO_STACK_RUNNING = "no stack is running."


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
        up_detached(root, infra_only)
    else:
        up_foreground(settings, infra_only)


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
    table, all_ready = status_table(root)
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
    try:
        _start_all_ready(stack, root)
        _run_demo_fleet(stack, calls=calls, agents=agents, seed=seed, reports=reports)
    except StackError as exc:
        raise CliError(str(exc), 2) from exc
    finally:
        stack.stop()
        stack.write_state("stopped")


def _start_all_ready(stack: Stack, root: Path) -> None:
    """Start the demo's stack and print its table; :class:`CliError` unless every
    component is ready."""
    started = time.monotonic()
    stack.root.mkdir(parents=True, exist_ok=True)
    stack.write_state("starting")
    stack.start()
    stack.write_state("ready")
    console.print(f"stack ready in {time.monotonic() - started:.1f}s")
    table, all_ready = status_table(root)
    console.print(table)
    if not all_ready:
        raise CliError("not every component is ready", 2)


def _run_demo_fleet(stack: Stack, *, calls: int, agents: int, seed: int, reports: Path) -> None:
    """The demo's fleet on the ready ``stack``: its accounts and keys made, its ``calls``
    simulated, the report written (none with ``calls`` 0)."""
    if calls:
        from finops.cli.commands.demo import run_demo

        run_demo(stack, calls=calls, agents=agents, seed=seed, reports=reports)
        console.print("[bold green]demo: every component is up and the fleet ran end to end[/]")
    else:
        console.print(
            "[bold green]demo: every component is up and ready; with --calls 0 no fleet"
            " runs, so the stack stops now[/]"
        )


def env() -> None:
    """Print, as `export` lines, the FINOPS_* settings a process needs to join the local
    stack: its addresses and, when its broker is the stack's own, that broker's settings (the
    services get them from `finops up`; without them a service's producer fails at start-up
    with `UnknownError` from InitProducerIdRequest).

    Another instance of a stream service, by hand (its own port and data folder), in a
    subshell: exported in your shell, the addresses would make a later `finops up` there take
    PostgreSQL, Redis and the broker for external ones.

      (eval "$(.venv/bin/finops env)"
       FINOPS_PORT=8014 FINOPS_DATA_DIR=.finops/healer-2 .venv/bin/python -m finops.healer)

    An address you set before (FINOPS_DATABASE_URL, FINOPS_REDIS_URL, FINOPS_KAFKA_BOOTSTRAP:
    then the broker is not the stack's, and no broker settings are printed) wins, as for the
    other commands.
    """
    for key, value in sorted(StackSettings().client_addresses().items()):
        print(f"export {key}={shlex.quote(value)}")


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(env)
    app.command()(demo)
