"""Ports of the local stack: drawing a free one, reserving it, checking a host can listen.

:func:`free_port` hands out ports outside the kernel's ephemeral range (or in
``FINOPS_FREE_PORTS``), never one twice in a process nor one another process of this OS user
holds (a byte lock in a reservations file); :func:`check_bind_host` refuses a bind host this
machine cannot listen on; :func:`port_is_free`, :func:`server_listens` and :func:`tcp_open`
probe a port.
"""

from __future__ import annotations

import fcntl
import functools
import os
import random
import re
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from finops.cli.failures import CliError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def server_listens(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a server accepts connections on ``port``: of a port that is not free
    (:func:`port_is_free`), whether a server holds it or a socket that does not listen (most
    often a connection's local port). On this machine a port nothing listens on refuses at
    once, so the probe costs no wait."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            # Closed with a reset, not a FIN: a closed probe would otherwise hold its local
            # port in TIME-WAIT for a minute, and that may be the very port it probes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The kernel may give the probe the very port it probes as its local one (the
            # port is in the ephemeral range and held by a connection only): the probe then
            # connects to itself, and no server answered.
            return bool(sock.getsockname() != sock.getpeername())
    except OSError:
        return False


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
