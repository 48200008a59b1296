"""The detached stack's state file (``.finops/stack.json``): write it (each component's
record), read it, probe it, show it, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from finops.cli.stack.ports import tcp_open
from finops.cli.stack.process import Component, is_same_process, pid_alive, started_at_ticks
from finops.cli.stack.settings import StackSettings


def state_path(root: Path) -> Path:
    """Where the stack of the data folder ``root`` records itself."""
    return root / "stack.json"


def stack_command(root: Path, command: str) -> str:
    """``finops <command>`` as it reaches the stack of the data folder ``root``: led by
    ``FINOPS_DATA_DIR=<root>`` unless ``root`` is the default folder, where a plain command
    looks (a plain `finops down` printed after `FINOPS_DATA_DIR=elsewhere finops up` stopped
    nothing).

    Examples
    --------
    >>> stack_command(Path(".finops").resolve(), "down")
    'finops down'
    >>> stack_command(Path("/tmp/my stack"), "status")
    "FINOPS_DATA_DIR='/tmp/my stack' finops status"
    """
    default = Path(StackSettings.model_fields["data_dir"].default).resolve()
    if root.resolve() == default:
        return f"finops {command}"
    return f"FINOPS_DATA_DIR={shlex.quote(str(root))} finops {command}"


def read_state(root: Path) -> dict[str, Any] | None:
    path = state_path(root)
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def probe_component(name: str, info: dict[str, Any]) -> tuple[bool, str]:
    """(alive, readiness) of one component as recorded in the state file."""
    host, port = info["host"], info["port"]
    # the process that started at the recorded time, not whichever has its pid since
    alive = bool(info.get("external")) or is_same_process(info.get("pid"), info.get("ticks"))
    if info["kind"] == "service":
        try:
            resp = httpx.get(f"http://{host}:{port}/readyz", timeout=2.0)
            return alive, "ready" if resp.status_code == 200 else "not ready"
        except httpx.HTTPError:
            return alive, "unreachable"
    if info.get("external"):
        return alive, "external"
    return alive, "ready" if tcp_open(host, port) else "unreachable"


def running_supervisor(root: Path) -> int | None:
    """The pid of the supervisor of a stack running from ``root``, else None.

    The recorded pid must still be the process that started at the recorded time: after a
    reboot or a ``kill -9`` it may be another process's, and `finops up` then refused to
    start while `finops down` found nothing to stop.
    """
    state = read_state(root)
    if not state or state.get("status") == "stopped":
        return None
    return _live_supervisor(state)


def runs_without_services(root: Path) -> bool:
    """Whether a stack runs from ``root`` (its supervisor alive) with no service among its
    components: one started with ``finops up --infra-only``."""
    state = read_state(root)
    if not state or state.get("status") in ("stopped", "failed"):
        return False
    if _live_supervisor(state) is None:
        return False
    components = state.get("components") or {}
    return not any(info.get("kind") == "service" for info in components.values())


def is_starting(root: Path, state: dict[str, Any]) -> bool:
    """Whether ``state`` (``root``'s) is a stack whose `finops up` is still starting it, its
    supervisor alive."""
    return state.get("status") == "starting" and running_supervisor(root) is not None


def _live_supervisor(state: dict[str, Any]) -> int | None:
    """The state's supervisor pid while that process, started at the recorded time, lives."""
    pid = state.get("supervisor_pid")
    return pid if pid and is_same_process(pid, state.get("supervisor_ticks")) else None


def mark_stopped(root: Path) -> None:
    """Record that no stack runs from ``root`` (its pids are stale); the supervisor does it
    itself on a clean stop, not after a ``kill -9`` or a reboot.

    Decided on the state as read here: a stack started since (its supervisor alive at its
    recorded start time) is left as it says.
    """
    state = read_state(root)
    if state and state.get("status") != "stopped" and _live_supervisor(state) is None:
        write_state_file(root, {**state, "status": "stopped"})


def write_state_file(root: Path, state: dict[str, Any]) -> None:
    """Replace ``root``'s stack.json with ``state`` at once, through a file of this process's
    own (two processes writing at once must not share one)."""
    path = state_path(root)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def component_record(comp: Component) -> dict[str, object]:
    """What the state file says of ``comp``, one of the stack's components."""
    pid, ticks = _running_process(comp)
    return {
        "kind": comp.kind,
        "pid": pid,
        "ticks": ticks,
        "host": comp.host,
        "port": comp.port,
        "external": comp.external,
        "restarts": comp.restarts,
        "failed": comp.failed,
        "log": str(comp.log_file) if comp.log_file else None,
    }


def _running_process(comp: Component) -> tuple[int | None, int | None]:
    """The pid of ``comp``'s process and when it started, while it runs; else no pid.

    A process that has exited (and been reaped: :meth:`Component.running` reaps it) has no
    start time to read, and its pid is free for the OS to give anyone: recorded alone, after a
    start that failed or a stop, `finops down` took whoever got that number for the stack's.
    An unreaped child keeps its pid and its ``/proc`` entry, so the two read here are one
    process's.
    """
    if comp.external or not comp.running():
        return None, None
    ticks = started_at_ticks(comp.pid)
    return (comp.pid, ticks) if ticks is not None else (None, None)


def record_failed_start(root: Path, error: str) -> None:
    """Record in ``root`` a start that failed before the stack had its components (drawing
    its own ports, say): ``finops status`` then says the last start failed, and why, and
    ``finops up --detach`` prints ``error``, as for a start that failed later."""
    root.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    state = {
        "status": "failed",
        "error": error,
        "supervisor_pid": me,
        "supervisor_ticks": started_at_ticks(me),
        "updated": time.time(),
        "components": {},
    }
    write_state_file(root, state)


def stop_recorded(root: Path, timeout: float = 30.0) -> list[str]:
    """Stop a detached stack: SIGTERM its supervisor, then anything of it still alive."""
    state = read_state(root)
    if not state:
        return []
    stopped: list[str] = []
    sup = state.get("supervisor_pid")
    # A recorded pid may belong to another process by now (pids are reused): only the
    # process that started at the recorded time is signalled, never another stack's.
    if sup and is_same_process(sup, state.get("supervisor_ticks")):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(sup) and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"supervisor (pid {sup})")
    for name, info in state.get("components", {}).items():
        pid = info.get("pid")
        if is_same_process(pid, info.get("ticks")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(f"{name} (pid {pid}, killed)")
    return stopped


def status_table(root: Path) -> tuple[Table, bool]:
    """The stack's table, one row per component (`finops status`), and whether every
    component is ready."""
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
