"""The broker gate closing: a client's connection ends with the gate, whatever stage it is at.

When the local broker dies the gate cancels every connection it forwards.  A connection
cancelled while it was still opening its own connection to the broker skipped the clean-up:
its client socket stayed open with nothing serving it, and its task stayed in the gate's set of
connections.  And a connection the listener accepted just before the gate closed starts its
task only after the gate ended the others: it must not be forwarded either.
"""

from __future__ import annotations

import asyncio

from finops.cli.stack.broker_gate import BrokerGate


class _BrokerThatNeverAnswers(BrokerGate):
    """A gate whose connections to the broker never finish opening (a broker that died)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ("127.0.0.1", 9), specs=())
        self.connecting = asyncio.Event()
        self.connections_to_broker = 0

    async def _connect_broker(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.connections_to_broker += 1
        self.connecting.set()
        await asyncio.Event().wait()  # never set: cancelled with the gate
        raise AssertionError("unreachable")


class _Broker:
    """A broker that reads what it is sent and answers nothing."""

    def __init__(self) -> None:
        self.received = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        self.received.set()

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _connect_client(
    gate: BrokerGate,
) -> tuple[asyncio.Server, asyncio.StreamReader, asyncio.StreamWriter]:
    server = await asyncio.start_server(gate._serve_client, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    return server, reader, writer


async def test_a_client_connecting_as_the_gate_closes_is_disconnected_not_left_waiting() -> None:
    gate = _BrokerThatNeverAnswers()
    server, client, _ = await _connect_client(gate)
    await gate.connecting.wait()
    assert len(gate._pipes) == 1
    await gate._end_connections()
    # end of stream: the client reconnects at once instead of waiting for its request timeout
    assert await asyncio.wait_for(client.read(), timeout=30) == b""
    assert gate._pipes == set()
    server.close()
    await server.wait_closed()


async def test_a_forwarded_connection_is_disconnected_when_the_gate_closes() -> None:
    broker = _Broker()
    async with broker as broker_address:
        gate = BrokerGate(("127.0.0.1", 0), broker_address, specs=())
        server, client, client_writer = await _connect_client(gate)
        metadata_request = b"\x00\x00\x00\x0a" + b"\x00\x03\x00\x01" + b"\x00\x00\x00\x07\xff\xff"
        client_writer.write(metadata_request)
        await broker.received.wait()  # the gate is forwarding this client's requests
        await gate._end_connections()
        assert await asyncio.wait_for(client.read(), timeout=30) == b""
        assert gate._pipes == set()
        server.close()
        await server.wait_closed()


class _GateOfOneBrokerLife(_BrokerThatNeverAnswers):
    """A gate whose broker is up once (its watch connection is ours to drop) and never again."""

    def __init__(self, watch: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        super().__init__()
        self.watch: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = watch
        self.opened = asyncio.Event()
        self.waiting_again = asyncio.Event()

    async def _wait_for_broker(
        self, stop: asyncio.Event
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if self.watch is not None:
            watch, self.watch = self.watch, None
            return watch
        self.waiting_again.set()
        await stop.wait()
        return None

    async def _open(self) -> asyncio.Server:
        server = await super()._open()
        self.opened.set()
        return server


async def test_a_connection_whose_task_starts_after_the_gate_closed_is_not_forwarded() -> None:
    """``run()`` marks the gate shut when the broker goes: a connection the listener accepted
    just before, whose task starts only now, is closed, not forwarded to a broker that may be
    back but not prepared yet."""
    broker_side: list[asyncio.StreamWriter] = []
    watched = asyncio.Event()

    async def keep(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker_side.append(writer)
        watched.set()

    broker = await asyncio.start_server(keep, "127.0.0.1", 0)
    watch = await asyncio.open_connection(*broker.sockets[0].getsockname()[:2])
    gate = _GateOfOneBrokerLife(watch)
    stop = asyncio.Event()
    running = asyncio.create_task(gate.run(stop))
    await gate.opened.wait()
    await watched.wait()  # the broker has taken the watch connection
    broker_side[0].close()  # the broker dies
    await gate.waiting_again.wait()
    # the task of a connection accepted as the gate closed starts now
    server, client, _ = await _connect_client(gate)
    assert await asyncio.wait_for(client.read(), timeout=30) == b""
    assert gate.connections_to_broker == 0
    assert gate._pipes == set()
    stop.set()
    await running
    for listener in (server, broker):
        listener.close()
        await listener.wait_closed()
