"""How long a service of the local stack takes to be ready again after a ``kill -9``.

Run against a detached stack (``finops up --detach``; ``FINOPS_DATA_DIR`` says which): for each
service named (default: every one), ``--repeats`` times, it kills the service's process with
SIGKILL, then prints, in seconds from the kill:

* ``restarted``: the stack's supervisor started it again (a new pid in the stack's state file;
  its restart backoff: 0.5 s after a first crash, doubling while it keeps crashing within a
  minute of a start);
* ``started``: uvicorn's "Started server process" in the service's log (the interpreter up and
  the service's modules imported);
* ``serving``: "Application startup complete" (the lifespan ran: pools, producers, consumers
  started, the checkpoint loaded);
* ``ready``: ``GET /readyz`` answered 200 (polled every 0.1 s; the time ``finops status``
  and an orchestrator see);
* ``adopted``: the healer's and the experiments' owned partitions adopted again ("partitions
  adopted": their consumer group rejoined, which readiness does not wait for; up to 23 s
  after the kill, when the broker waits out the killed member's session first).

Before each kill it waits until the service's ``/readyz`` has answered 200 for ``--settle``
seconds and its process has run over a minute (else the supervisor would double its restart
backoff: a crash loop), so every kill is a first crash. Medians last, per service.

    FINOPS_DATA_DIR=... .venv/bin/python bench/restart_readiness.py [optimizer healer ...]
        [--repeats 3] [--settle 15]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from finops.cli.stack.process import is_same_process
from finops.cli.stack.settings import StackSettings
from finops.cli.stack.state import read_state

SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")
PHASES = ("restarted", "started", "serving", "ready", "adopted")
#: log messages that mark a phase
MARKS = {
    "started": "Started server process",
    "serving": "Application startup complete",
    "adopted": "partitions adopted",
}
LIMIT_S = 120.0
#: a process that ran longer has its supervisor's restart backoff back at its first step
BACKOFF_RESET_S = 61.0


def component(root: Path, name: str) -> dict[str, Any]:
    state = read_state(root)
    if state is None or name not in state.get("components", {}):
        sys.exit(f"no detached stack with {name} in {root} (finops up --detach)")
    return dict(state["components"][name])


def ready(info: dict[str, Any]) -> bool:
    try:
        url = f"http://{info['host']}:{info['port']}/readyz"
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def settle(root: Path, name: str, seconds: float) -> dict[str, Any]:
    """The service's record once its /readyz has said 200 for ``seconds`` in a row."""
    since: float | None = None
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        info = component(root, name)
        if is_same_process(info.get("pid"), info.get("ticks")) and ready(info):
            since = since or time.monotonic()
            if time.monotonic() - since >= seconds:
                return info
        else:
            since = None
        time.sleep(0.2)
    sys.exit(f"{name} was not ready for {seconds} s within {LIMIT_S} s")


def log_marks(log: Path, start: int, killed_at: float) -> dict[str, float]:
    """Seconds from the kill to each mark in the log lines written from byte ``start`` on."""
    found: dict[str, float] = {}
    with log.open("rb") as f:
        f.seek(start)
        for line in f:
            try:
                entry = json.loads(line)
                at = datetime.strptime(entry["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            for phase, mark in MARKS.items():
                if phase not in found and mark in str(entry.get("message")):
                    found[phase] = at - killed_at
    return found


def kill_once(
    root: Path, name: str, settle_s: float, started: dict[str, float]
) -> dict[str, float]:
    info = settle(root, name, settle_s)
    time.sleep(max(0.0, started.get(name, 0.0) + BACKOFF_RESET_S - time.monotonic()))
    log = Path(info["log"])
    start = log.stat().st_size
    killed_at = time.time()
    t0 = time.monotonic()
    os.kill(int(info["pid"]), signal.SIGKILL)
    figures: dict[str, float] = {}
    while time.monotonic() - t0 < LIMIT_S:
        now = component(root, name)
        if "restarted" not in figures and now.get("pid") not in (None, info["pid"]):
            figures["restarted"] = time.monotonic() - t0
            started[name] = time.monotonic()
        if "restarted" in figures and ready(now):
            figures["ready"] = time.monotonic() - t0
            break
        time.sleep(0.1)
    else:
        sys.exit(f"{name} was not ready again within {LIMIT_S} s of its kill")
    if name in ("healer", "experiments"):  # wait for the rejoin, which comes after /readyz
        while time.monotonic() - t0 < LIMIT_S and "adopted" not in log_marks(log, start, 0.0):
            time.sleep(0.2)
    figures.update(log_marks(log, start, killed_at))
    return figures


def line(name: str, figures: dict[str, float]) -> str:
    phases = [*PHASES, *(["max ready"] if "max ready" in figures else [])]
    cells = [f"{p} {figures[p]:5.1f}" if p in figures else f"{p}   n/a" for p in phases]
    return f"{name:<12} " + "  ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help=f"of {', '.join(SERVICES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=15.0, help="ready this long before a kill")
    args = parser.parse_args()
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        parser.error(f"no service {', '.join(unknown)}; one of {', '.join(SERVICES)}")
    root = Path(os.environ.get("FINOPS_DATA_DIR") or StackSettings().data_dir).resolve()
    runs: dict[str, list[dict[str, float]]] = {}
    started: dict[str, float] = {}
    print("seconds from the kill -9 to each phase", flush=True)
    for _ in range(args.repeats):
        for name in args.services or SERVICES:
            figures = kill_once(root, name, args.settle, started)
            runs.setdefault(name, []).append(figures)
            print(line(name, figures), flush=True)
    print("median")
    for name, done in runs.items():
        medians = {
            p: statistics.median(f[p] for f in done) for p in PHASES if all(p in f for f in done)
        }
        medians |= {"max ready": max(f["ready"] for f in done)}
        print(line(name, medians))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
