"""`finops up` refusing a taken port says what holds it: a server, and how to stop a stack
that holds it, including one started with another FINOPS_DATA_DIR, which `finops status` and
`finops down` do not see; or a socket that does not listen (most often another program's
connection given the port as its local one), which frees it by itself."""

from __future__ import annotations

import socket

import pytest

from finops.cli.stack.local_stack import Stack, StackError, StackSettings
from finops.cli.stack.ports import free_port, server_listens

INFRA_PORTS = ("postgres", "redis", "kafka", "storage")


def _settings(tmp_path, **ports: int) -> StackSettings:
    """The stack's settings with ``ports`` and a free port for the rest of its infrastructure
    (a default port may be in use on this machine: the message would name it too)."""
    chosen = {f"{name}_port": ports.get(name) or free_port() for name in INFRA_PORTS}
    return StackSettings(data_dir=tmp_path, **chosen)


def test_a_taken_port_names_it_and_how_to_stop_a_stack_of_another_data_dir(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        stack = Stack(_settings(tmp_path, redis=port), infra_only=True)
        with pytest.raises(StackError) as refused:
            stack.check_ports()
    message = str(refused.value)
    assert f"port {port} (redis) is already in use on 127.0.0.1" in message
    assert (
        "a stack started with another FINOPS_DATA_DIR stops with"
        " `FINOPS_DATA_DIR=<its folder> finops down`"
    ) in message


def test_a_port_held_by_a_socket_that_does_not_listen_is_told_from_a_server(tmp_path):
    """An outgoing connection, closed, holds its local port in TIME-WAIT for about a minute:
    no server to stop, and `finops down` stops none. A socket bound without listen() holds a
    port alike (no server answers on it)."""
    with socket.socket() as connection_like:
        connection_like.bind(("127.0.0.1", 0))
        port = connection_like.getsockname()[1]
        stack = Stack(_settings(tmp_path, kafka=port), infra_only=True)
        with pytest.raises(StackError) as refused:
            stack.check_ports()
    assert str(refused.value) == (
        f"port {port} (kafka) on 127.0.0.1 is taken, but no server answers on it: most likely"
        " a connection of this machine that the system gave this port as its own (a closed one"
        " holds it for about a minute): start again in a minute, or set FINOPS_KAFKA_PORT to"
        " another port."
    )


def test_a_server_and_a_held_port_are_each_told_in_one_line(tmp_path):
    with socket.socket() as server, socket.socket() as connection_like:
        server.bind(("127.0.0.1", 0))
        server.listen()
        connection_like.bind(("127.0.0.1", 0))
        served, held = server.getsockname()[1], connection_like.getsockname()[1]
        settings = _settings(tmp_path, redis=served, postgres=held)
        with pytest.raises(StackError) as refused:
            Stack(settings, infra_only=True).check_ports()
    message = str(refused.value)
    assert "\n" not in message
    assert f"port {served} (redis) is already in use on 127.0.0.1. Stop whatever" in message
    assert f"port {held} (postgres) on 127.0.0.1 is taken, but no server answers" in message
    assert f"port {served} (redis) on 127.0.0.1 is taken," not in message
    assert f"port {held} (postgres) is already in use" not in message


def test_a_server_on_another_address_is_not_ruled_out_when_the_stack_binds_every_address(
    tmp_path,
):
    """Bound to 0.0.0.0, the stack's port is blocked by a server on any address of the
    machine, while the probe reaches only 127.0.0.1: the message must not say no server."""
    with socket.socket() as server:
        server.bind(("127.0.0.2", 0))
        server.listen()
        port = server.getsockname()[1]
        settings = _settings(tmp_path, redis=port).model_copy(update={"bind_host": "0.0.0.0"})
        with pytest.raises(StackError) as refused:
            Stack(settings, infra_only=True).check_ports()
    message = str(refused.value)
    assert (
        f"port {port} (redis) on 0.0.0.0 is taken, but no server answers on it at 127.0.0.1"
        in message
    )
    assert "a server on another address of this machine would hold it too" in message


def test_the_probe_closes_with_a_reset_and_leaves_no_time_wait_behind():
    """A probe closed with a FIN would hold its local port in TIME-WAIT for a minute, and the
    kernel may have given it the probed port itself; the server's end of a reset connection
    reads ECONNRESET, of a FIN an empty read."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert server_listens("127.0.0.1", server.getsockname()[1])
        accepted, _ = server.accept()
        with accepted, pytest.raises(ConnectionResetError):
            accepted.recv(1)
