"""How ``finops up`` starts the stack: in this process, supervising it until it is asked
to stop, or detached, a supervisor in the background that this command waits for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from finops.cli.failures import CliError, explain
from finops.cli.output import console
from finops.cli.stack.local_stack import Stack, StackError, StackSettings, StartInterrupted
from finops.cli.stack.state import (
    read_state,
    record_failed_start,
    stack_command,
    state_path,
    status_table,
)


def up_foreground(settings: StackSettings, infra_only: bool) -> None:
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
    console.print(status_table(stack.root)[0])
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


def up_detached(root: Path, infra_only: bool) -> None:
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
    console.print(status_table(root)[0])
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
