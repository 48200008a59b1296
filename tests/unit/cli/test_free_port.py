"""The local stack's free ports lie outside the kernel's ephemeral range, in the range
``FINOPS_FREE_PORTS`` gives when it is set; no port is handed out twice, and two test
workers draw from ranges that do not overlap."""

from __future__ import annotations

import fcntl
import itertools
import os
import socket
import subprocess
import sys

import pytest
from support import worker_port_range

from finops.cli.failures import CliError
from finops.cli.stack import ports
from finops.cli.stack.ports import (
    FREE_PORTS_ENV,
    ephemeral_range,
    free_port,
    free_port_range,
    parse_port_range,
)


@pytest.fixture(autouse=True)
def nothing_handed_out_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A memory of handed-out ports of the test's own (this worker's is put back after)."""
    monkeypatch.setattr(ports, "_handed_out", set())


def test_free_ports_are_never_ones_an_outgoing_connection_could_take() -> None:
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert all(not low <= port <= high for port in ports), sorted(ports)
    # chosen at random, not in order, and none of them twice
    assert ports != sorted(ports) and len(set(ports)) == 50


def test_a_free_port_can_be_bound_by_a_server() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert server.getsockname()[1] == port


@pytest.mark.parametrize(
    ("ephemeral", "band"),
    [
        ((32768, 60999), (16384, 32767)),  # Linux's default: the 16,384 ports below
        ((10000, 60999), (1024, 9999)),  # not below 1024
        ((2000, 40000), (40001, 65535)),  # too low to leave a band below: the ports above
        ((1024, 65535), (65536, 65535)),  # no band at all (first > last)
    ],
)
def test_without_the_setting_the_range_is_a_band_beside_the_ephemeral_one(
    monkeypatch: pytest.MonkeyPatch, ephemeral: tuple[int, int], band: tuple[int, int]
) -> None:
    monkeypatch.delenv(FREE_PORTS_ENV, raising=False)
    monkeypatch.setattr(ports, "ephemeral_range", lambda: ephemeral)
    assert free_port_range() == band


def _set_a_range_of_this_workers(monkeypatch: pytest.MonkeyPatch, size: int) -> int:
    """Set ``FINOPS_FREE_PORTS`` to ``size`` ports of this worker's own range (no other
    worker binds there); return the first."""
    start = free_port()
    low = min(start, free_port_range()[1] - (size - 1))
    monkeypatch.setenv(FREE_PORTS_ENV, f"{low}-{low + size - 1}")
    return low


def test_free_ports_come_from_the_range_set_and_none_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    low = _set_a_range_of_this_workers(monkeypatch, 64)
    ports = [free_port() for _ in range(20)]
    assert all(low <= port <= low + 63 for port in ports), ports
    assert len(set(ports)) == 20


def test_a_range_with_no_free_port_left_is_an_error_not_a_port_from_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv(FREE_PORTS_ENV, f"{port}-{port}")
    monkeypatch.setattr(ports, "_handed_out", set())
    assert free_port() == port
    with pytest.raises(CliError, match=f"no free port left in {FREE_PORTS_ENV}={port}-{port}"):
        free_port()  # handed out already
    monkeypatch.setattr(ports, "_handed_out", set())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        with pytest.raises(CliError) as taken:
            free_port()  # another server holds it
    assert taken.value.code == 2


@pytest.mark.parametrize(
    "value", ["", "abc", "20000", "20000-", "24095-20000", "80-90", "60000-70000", "1-2-3"]
)
def test_a_malformed_range_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(FREE_PORTS_ENV, value)
    with pytest.raises(CliError) as raised:
        free_port()
    assert raised.value.message == (
        f"{FREE_PORTS_ENV}={value!r}: expected LOW-HIGH, two ports with"
        " 1024 <= LOW <= HIGH <= 65535 (e.g. 20000-24095)"
    )
    assert raised.value.code == 2


def test_a_range_reads_with_spaces_around_it() -> None:
    assert parse_port_range(" 20000-20000\n") == (20000, 20000)


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 12])
def test_test_workers_draw_from_ranges_that_do_not_overlap(workers: int) -> None:
    band = (16384, 32767)
    ranges = [worker_port_range(band, f"gw{i}", workers) for i in range(workers)]
    for low, high in ranges:
        assert band[0] <= low <= high <= band[1]
        assert high - low + 1 == (band[1] - band[0] + 1) // workers
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high < low


def test_under_xdist_this_worker_has_a_range_and_free_port_stays_in_it() -> None:
    """tests/conftest.py sets the range of an xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        pytest.skip("not a pytest-xdist worker")
    low, high = parse_port_range(os.environ[FREE_PORTS_ENV])
    assert low <= free_port() <= high


def test_the_last_free_port_of_a_range_is_found_without_luck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    low = _set_a_range_of_this_workers(monkeypatch, 1000)
    last = low + 500
    monkeypatch.setattr(ports, "_handed_out", set(range(low, low + 1000)) - {last})
    monkeypatch.setattr(ports, "_TRIES", 0)  # no random tries: only the scan can find it
    assert free_port() == last
    with pytest.raises(CliError, match="no free port left"):
        free_port()


@pytest.mark.parametrize(
    ("worker", "workers"), [("gw2", 2), ("gw0", 1000), ("master", 2), ("gw0", 0)]
)
def test_a_worker_without_a_range_of_its_own_is_an_error(worker: str, workers: int) -> None:
    with pytest.raises(ValueError, match=f"no port range for worker {worker} of {workers}"):
        worker_port_range((16384, 32767), worker, workers)


def _draw_in_another_process(free_ports: str, env: dict[str, str] | None = None) -> str:
    """What ``free_port()`` answers (a port, or its one-line error) in a child process that
    inherited ``FINOPS_FREE_PORTS`` (as the `finops up` a test starts, or a bench script beside
    two others, does), with ``env`` added to its environment."""
    code = (
        "from finops.cli.failures import CliError\n"
        "from finops.cli.stack.ports import free_port\n"
        "try:\n    print(free_port())\n"
        "except CliError as exc:\n    print(exc.message)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, FREE_PORTS_ENV: free_ports, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def test_a_port_handed_out_and_not_yet_bound_is_not_handed_out_by_another_process() -> None:
    """A child process inheriting the range drew, with a memory of its own, a port its parent
    had handed out and not bound yet: both servers then raced for it ("address already in
    use" in `test_simulate` and the bench smoke run)."""
    mine = free_port()  # handed out, not bound
    theirs = _draw_in_another_process(f"{mine}-{mine}")
    assert theirs == (
        f"no free port left in {FREE_PORTS_ENV}={mine}-{mine}"
        " (this process hands out none twice, nor one another process holds)"
    )


def test_a_port_another_process_held_is_free_again_once_that_process_ended() -> None:
    port = free_port()
    # let go of it here (as if this process had never drawn it), for the children to draw
    held = ports._reservations[ports._reservations_file()]
    assert held is not None
    fcntl.lockf(held, fcntl.LOCK_UN, 1, port)
    drawn = [_draw_in_another_process(f"{port}-{port}") for _ in range(2)]
    assert drawn == [str(port), str(port)]


def _reserve_in(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], system: tuple[str, ...]
) -> None:
    """Make this process look for its reservations file afresh: in ``env``'s temporary
    folder, else the first of the system folders ``system`` that exists."""
    for name in ports._TEMP_FOLDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ports, "_SYSTEM_TEMP_FOLDERS", system)
    monkeypatch.setattr(ports, "_reservations", {})
    ports._reservations_file.cache_clear()
    monkeypatch.setattr(ports, "_handed_out", set())


@pytest.fixture
def fresh_reservations():
    yield
    ports._reservations_file.cache_clear()


def test_importing_the_cli_does_not_look_for_a_temporary_folder() -> None:
    """With no usable temporary folder (tempfile.gettempdir raises FileNotFoundError, or
    falls back on the current folder), importing the module every `finops` command imports
    raised, and the lock file would land in the current folder; it also test-wrote in the
    temporary folder at every start of the command."""
    code = (
        "import tempfile\n"
        "def nowhere():\n    raise FileNotFoundError('No usable temporary directory found')\n"
        "tempfile.gettempdir = nowhere\n"
        "from finops.cli.stack import ports\n"
        "print('imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "imported\n", "")


def test_without_a_temporary_folder_ports_are_drawn_from_memory_and_no_file_lands_here(
    tmp_path, monkeypatch, fresh_reservations
) -> None:
    here = tmp_path / "project"
    here.mkdir()
    monkeypatch.chdir(here)
    _reserve_in(monkeypatch, {}, (str(tmp_path / "no-tmp"), str(tmp_path / "no-var-tmp")))
    first, second = free_port(), free_port()
    assert first != second
    assert ports._reservations == {}
    assert list(here.iterdir()) == []


def test_a_reservations_file_of_another_user_is_not_used(
    tmp_path, monkeypatch, fresh_reservations
) -> None:
    """Another user who created the file (0666) and locked every byte would deny this user
    every port: this process relies on its memory instead."""
    _reserve_in(monkeypatch, {"TMPDIR": str(tmp_path)}, ())
    path = ports._reservations_file()
    assert path == tmp_path / f"finops-free-ports-{os.getuid()}.lock"
    path.touch(mode=0o666)
    os.chown(path, os.getuid() + 1, -1)
    if path.stat().st_uid == os.getuid():
        pytest.skip("cannot give the file to another user here")
    port = free_port()
    assert port in ports._handed_out
    assert ports._reservations == {path: None}


def test_a_link_in_place_of_the_reservations_file_is_not_followed(
    tmp_path, monkeypatch, fresh_reservations
) -> None:
    _reserve_in(monkeypatch, {"TMPDIR": str(tmp_path)}, ())
    path = ports._reservations_file()
    target = tmp_path / "elsewhere"
    path.symlink_to(target)
    free_port()
    assert ports._reservations == {path: None}
    assert not target.exists()


def test_the_reservations_file_is_in_the_temporary_folder_the_environment_names(
    tmp_path, monkeypatch, fresh_reservations
) -> None:
    _reserve_in(monkeypatch, {"TMPDIR": str(tmp_path)}, ("/tmp",))
    port = free_port()
    path = tmp_path / f"finops-free-ports-{os.getuid()}.lock"
    fd = ports._reservations[path]
    assert fd is not None and os.fstat(fd).st_ino == path.stat().st_ino
    assert _draw_in_another_process(f"{port}-{port}", {"TMPDIR": str(tmp_path)}) == (
        f"no free port left in {FREE_PORTS_ENV}={port}-{port}"
        " (this process hands out none twice, nor one another process holds)"
    )
