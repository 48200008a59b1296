"""Processes of the local stack: liveness (a pid and its start time) and one supervised child
process (:class:`Component`); the ports they listen on are drawn by
:mod:`finops.cli.stack.ports`."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finops.cli.stack.ports import tcp_open

_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state to be sure.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def started_at_ticks(pid: int | None) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22), or None.

    A pid and this number together name one process: pids are reused (pid_max is 32,768 on
    many machines), so a recorded pid alone may by now be somebody else's process.
    """
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # fields[0] is field 3 (state)


def is_same_process(pid: int | None, ticks: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``ticks`` (alive, not reused).

    A pid without its start time is nobody known: it used to be taken for the process on its
    own, and a start that failed recorded its stopped components' pids so (their start time
    no longer readable), so a later `finops down` SIGKILLed the process group of whoever had
    been given one of those numbers since.
    """
    if ticks is None or not pid_alive(pid):
        return False
    return started_at_ticks(pid) == ticks


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this child when the supervisor dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Component:
    """One process of the stack: how to start it, how to tell it is ready, how to stop it."""

    name: str
    kind: str  # "infra" or "service"
    port: int
    host: str = "127.0.0.1"
    external: str | None = None  # the URL used instead of starting it
    process: subprocess.Popen[bytes] | None = None
    #: restarts since the stack started (``finops status`` shows them)
    restarts: int = 0
    #: crashes since it last ran a minute: the restart backoff's exponent
    crashes_in_a_row: int = 0
    started_at: float = 0.0
    next_restart_at: float = 0.0
    #: why the supervisor no longer starts it (a service that refused its settings)
    failed: str | None = None
    log_file: Path | None = None
    prepare: Callable[[], None] | None = None
    command: Callable[[], list[str]] = field(default=lambda: [])
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    ready_probe: Callable[[], bool] | None = None
    #: the stack drew its port itself (no setting names it): it may take another one
    port_drawn: bool = False
    #: the size of its log when it was last started: what it logged since starts there
    log_offset: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.prepare:
            self.prepare()
        assert self.log_file is not None
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab")
        self.log_offset = out.tell()
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                user=self.user,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        finally:
            out.close()
        self.started_at = time.monotonic()

    def found_its_port_taken(self) -> bool:
        """Whether it logged, since it was last started, that its port was in use (uvicorn:
        ``[Errno 98] ... address already in use``; the broker: ``AddrInUse``)."""
        if self.log_file is None or not self.log_file.exists():
            return False
        with self.log_file.open("rb") as log:
            log.seek(self.log_offset)
            return _PORT_IN_USE.search(log.read().decode(errors="replace")) is not None

    def ready(self) -> bool:
        """Whether it answers its probe, and its process still runs once it did: an answer
        from whatever else listens on its port (a program that bound it before the component
        could; the component then exits, "address already in use") is not the component's."""
        if self.external:
            return True
        if not self.running():
            return False
        answered = self.ready_probe() if self.ready_probe else tcp_open(self.host, self.port)
        return answered and self.running()

    def stop(self, timeout: float = 15.0) -> None:
        self.ask_to_stop()
        self.wait_stopped(timeout)

    def ask_to_stop(self) -> None:
        """Send the stop signal to the component's process group (no wait)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)

    def wait_stopped(self, timeout: float = 15.0) -> None:
        """Wait for the process to exit after :meth:`ask_to_stop`; kill its group after
        ``timeout`` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def last_error(log_file: Path | None, lines: int = 400) -> str | None:
    r"""The last error a component logged, to say why it stopped; None when there is none.

    The exception of the last ERROR or CRITICAL JSON line that carries one (``exc_info``),
    or of the last plain traceback, wins over a bare message ("Application startup failed"
    says less than the exception before it).

    Examples
    --------
    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "optimizer.log"
    >>> _ = log.write_text(
    ...     '{"level": "ERROR", "message": "Exception in lifespan", "exc_info": '
    ...     '"Traceback (most recent call last):\\nOSError: [Errno 98] address in use"}\n'
    ...     '{"level": "ERROR", "message": "Application startup failed. Exiting."}\n'
    ... )
    >>> last_error(log)
    'OSError: [Errno 98] address in use'

    A service that refuses its settings says why in one ``error: `` line
    (:func:`finops.common.runner.serve`); that line is the error, without its ``error: ``:

    >>> _ = log.write_text("error: FINOPS_REDIS_PORT=0: Input should be at least 1\n")
    >>> last_error(log)
    'FINOPS_REDIS_PORT=0: Input should be at least 1'
    """
    if log_file is None or not log_file.exists():
        return None
    message: str | None = None
    for line in reversed(log_file.read_text(errors="replace").splitlines()[-lines:]):
        if _EXCEPTION_LINE.match(line):
            return line[:300]
        if line.startswith("error: "):
            return line.removeprefix("error: ")[:300]
        try:
            record = json.loads(line) if line.startswith("{") else None
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("level") not in {"ERROR", "CRITICAL"}:
            continue
        trace = str(record.get("exc_info") or "").strip().splitlines()
        if trace:
            return trace[-1][:300]
        message = message or str(record.get("message", ""))[:300] or None
    return message


_PORT_IN_USE = re.compile(r"Errno 98\b|AddrInUse|[Aa]ddress already in use")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
