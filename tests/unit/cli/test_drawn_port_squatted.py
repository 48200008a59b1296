"""A program of somebody else's that listens on the port the stack drew for a component is
not taken for the component: the broker was declared ready on a connection the other
program's listener accepted (it then exited with AddrInUse, nobody noticed, and the start
ended "not ready within Ns: kafka"). Started and moved on a real broker:
tests/integration/test_stack_ports_drawn.py."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.process import Component


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    """A listener that accepts connections and never answers on them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.fixture
def alive() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for the component's, running until the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_broker_is_not_ready_on_a_listener_of_another_program(
    tmp_path: Path, squatter: socket.socket, alive: subprocess.Popen[bytes]
) -> None:
    stack = Stack(StackSettings(data_dir=tmp_path, kafka_storage="memory"), infra_only=True)
    stack.infra.broker_port = squatter.getsockname()[1]  # bound by another program first
    broker = stack.infra.component("broker")
    broker.process = alive  # its own process still starting: it has not tried to bind yet
    # the listener accepts the connection; it never answers a Kafka request
    assert broker.ready() is False


def test_a_component_whose_process_ended_while_probed_is_not_ready(
    tmp_path: Path, alive: subprocess.Popen[bytes]
) -> None:
    def answered_then_exited() -> bool:
        # the probe's answer came from another program; the component's process exits meanwhile
        alive.kill()
        alive.wait()
        return True

    comp = Component("optimizer-2", "service", 1, ready_probe=answered_then_exited)
    comp.process = alive
    assert comp.ready() is False


def test_a_drawn_port_taken_before_the_start_is_drawn_anew_first(
    tmp_path: Path, squatter: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker is never started on a port another program listens on: it would answer
    nothing there (Kafka's probe then waits for an exit) or be taken for the broker."""
    said: list[str] = []
    stack = Stack(
        StackSettings(data_dir=tmp_path, kafka_storage="memory"), infra_only=True, echo=said.append
    )
    taken = squatter.getsockname()[1]
    stack.infra.broker_port = taken
    stack.components["broker"] = stack.infra.component("broker")
    started: list[int] = []
    monkeypatch.setattr(Component, "start", lambda self: started.append(self.port))
    stack._start(stack.components["broker"])
    moved = stack.components["broker"]
    assert started == [moved.port] and moved.port != taken
    assert stack.infra.broker_port == moved.port
    assert said == [
        f"broker: port {taken} was taken before it could listen on it;"
        f" starting it on port {moved.port}"
    ]
