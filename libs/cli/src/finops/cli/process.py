"""Processes of the local stack: ports, liveness, and one supervised child process."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from finops.cli.failures import CliError

_PR_SET_PDEATHSIG = 1


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_bind_host(host: str) -> None:
    """Refuse, before anything starts, a ``FINOPS_BIND_HOST`` this machine cannot listen on (a
    name that does not resolve, an address of another machine, an IPv6 address: the stack
    listens on IPv4). Otherwise every port looked taken, and drawing a free one tried each of
    the band's 16,384 ports (each a name lookup) before it failed with a traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CliError(
                f"FINOPS_BIND_HOST={host}: cannot listen on it ({reason}); give an IPv4"
                " address of this machine, such as 127.0.0.1",
                2,
            ) from None


#: where Linux says its ephemeral ports are; the range below is assumed where it does not
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LINUX_EPHEMERAL = (32768, 60999)
#: how many ports below (or above) the ephemeral range :func:`free_port` chooses among
_BAND = 16384
_TRIES = 200
#: a setting: the ports :func:`free_port` chooses among, ``LOW-HIGH`` (both included)
FREE_PORTS_ENV = "FINOPS_FREE_PORTS"
_PORT_RANGE = re.compile(r"(\d{1,5})-(\d{1,5})")
#: the ports :func:`free_port` has handed out in this process (it hands out none twice)
_handed_out: set[int] = set()
#: the settings naming the temporary folder, the first set wins; else the first of
#: :data:`_SYSTEM_TEMP_FOLDERS` that exists (never the current folder, where
#: :func:`tempfile.gettempdir` ends up when none is writable)
_TEMP_FOLDER_ENV = ("TMPDIR", "TEMP", "TMP")
#: (the file is opened without following a link and used only when it is this user's own)
_SYSTEM_TEMP_FOLDERS = ("/tmp", "/var/tmp", "/usr/tmp")  # noqa: S108
#: this process's descriptor of each reservations file (:func:`_reservations_file`), open
#: for its whole life (closing any descriptor of the file would drop every lock this process
#: holds on it); None: the file cannot be used
_reservations: dict[Path, int | None] = {}


@functools.cache
def _reservations_file() -> Path | None:
    """Where the processes of this machine's user hold the ports they handed out: byte N of
    this file is locked (a POSIX record lock, dropped by the kernel when its process ends) by
    the process that handed out port N. Worked out when a port is first drawn, not when the
    module is imported (every `finops` command imports it)."""
    named = [os.environ.get(name) for name in _TEMP_FOLDER_ENV]
    folders = [f for f in named if f] or [f for f in _SYSTEM_TEMP_FOLDERS if Path(f).is_dir()]
    return Path(folders[0]) / f"finops-free-ports-{os.getuid()}.lock" if folders else None


def _open_reservations(path: Path) -> int | None:
    """A descriptor of ``path``, created if need be; None where it is no regular file of this
    OS user's (another user who created it could lock every byte and deny every port) or
    cannot be opened (no such folder, a read-only one, a symbolic link in its place)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or info.st_uid != os.getuid() or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of ephemeral ports: the local ports of outgoing connections.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     settings = Path(folder) / "ip_local_port_range"
    ...     _ = settings.write_text("40000 50000")
    ...     ephemeral_range(settings), ephemeral_range(Path(folder) / "missing")
    ((40000, 50000), (32768, 60999))
    """
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return _LINUX_EPHEMERAL
    return low, high


def parse_port_range(value: str) -> tuple[int, int]:
    """``LOW-HIGH`` (both included) as two ports; a one-line :class:`CliError` naming
    ``FINOPS_FREE_PORTS`` when it is not that.

    Examples
    --------
    >>> parse_port_range("20000-24095")
    (20000, 24095)
    >>> try:
    ...     parse_port_range("24095-20000")
    ... except CliError as exc:
    ...     print(exc.message.split(":")[0])
    FINOPS_FREE_PORTS='24095-20000'
    """
    match = _PORT_RANGE.fullmatch(value.strip())
    low, high = (int(match[1]), int(match[2])) if match else (0, 0)
    if not 1024 <= low <= high <= 65535:
        raise CliError(
            f"{FREE_PORTS_ENV}={value!r}: expected LOW-HIGH, two ports with"
            " 1024 <= LOW <= HIGH <= 65535 (e.g. 20000-24095)",
            2,
        )
    return low, high


def free_port_range() -> tuple[int, int]:
    """The ports :func:`free_port` chooses among (both included): ``FINOPS_FREE_PORTS`` when
    it is set, otherwise the band just below the ephemeral range (or above it, where the
    range starts too low); ``first > last`` when there is no such band."""
    setting = os.environ.get(FREE_PORTS_ENV)
    if setting is not None:
        return parse_port_range(setting)
    low, high = ephemeral_range()
    return (max(1024, low - _BAND), low - 1) if low > 2048 else (high + 1, 65535)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, chosen at random from ``FINOPS_FREE_PORTS`` when it is set,
    otherwise *outside* the ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the one it also
    gives every outgoing connection: between this call and the server's own bind, any client
    on the machine (a test's Kafka or HTTP clients) can take it as its local port, and the
    server fails with "address already in use".  Ports outside that range are never given to
    a connection, so only another server can race for them.

    "Free now" is no reservation: a port handed out but not yet bound, or whose server has
    stopped for a while (a stack between ``down`` and ``up`` keeps its ports), looks free to
    every other caller.  So one process never hands out the same port twice (a range must
    hold every port one process draws in its life), nor one that another process of this
    user still holds (:func:`_reserve`: a child that inherited its parent's
    ``FINOPS_FREE_PORTS``, the `finops up` a test started, a bench script beside two others,
    once drew a port its parent or a sibling had drawn and not bound yet, and one of the two
    servers failed with "address already in use"); and processes that must never share a
    port (the test suite's pytest-xdist workers) each set ``FINOPS_FREE_PORTS`` to a range of
    their own; with it set, a range with no free port left that this process has not handed
    out is an error rather than a port from elsewhere.
    """
    first, last = free_port_range()
    for port in _candidates(first, last):
        if port not in _handed_out and port_is_free(host, port) and _reserve(port):
            _handed_out.add(port)
            return port
    if os.environ.get(FREE_PORTS_ENV) is not None:
        raise CliError(
            f"no free port left in {FREE_PORTS_ENV}={first}-{last}"
            " (this process hands out none twice, nor one another process holds)",
            2,
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded band
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def _reserve(port: int, path: Path | None = None) -> bool:
    """Hold ``port`` for this process's life unless another process holds it: whether this
    one now does. Where the reservations file cannot be used (no temporary folder, a
    read-only one, a file of another user's or a link in its place, a file system without
    record locks), every port counts as held by this process (reserved for it):
    :func:`free_port` then falls back on this process's memory."""
    try:
        path = path or _reservations_file()
    except OSError:  # a system folder it may not even look at
        return True
    if path is None:
        return True
    if path not in _reservations:
        _reservations[path] = _open_reservations(path)
    fd = _reservations[path]
    if fd is None:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except (BlockingIOError, PermissionError):  # EAGAIN, EACCES: another process holds it
        return False
    except OSError:
        return True
    return True


def _candidates(first: int, last: int) -> Iterator[int]:
    """Ports of ``first..last`` to try: ``_TRIES`` at random, then every one in random order
    (a range nearly used up still yields its last free port)."""
    if first > last:
        return
    chooser = random.SystemRandom()
    for _ in range(_TRIES):
        yield chooser.randint(first, last)
    rest = list(range(first, last + 1))
    chooser.shuffle(rest)
    yield from rest


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
