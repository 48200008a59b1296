"""The local stack's free ports lie outside the kernel's ephemeral range."""

from __future__ import annotations

import socket

from finops.cli.process import ephemeral_range, free_port


def test_free_ports_are_never_ones_an_outgoing_connection_could_take() -> None:
    low, high = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(not low <= port <= high for port in ports), sorted(ports)
    # chosen at random, not one fixed port
    assert len(ports) > 40


def test_a_free_port_can_be_bound_by_a_server() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert server.getsockname()[1] == port
