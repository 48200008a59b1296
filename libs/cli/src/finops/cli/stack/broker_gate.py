"""A TCP gate in front of the local broker that opens only once the broker can be written to.

The local broker (tansu with its S3 storage) loads a partition's high watermark lazily, on
the first fetch of that partition after a start. A produce that arrives first is written at
offset 0 and overwrites the records already stored there: acknowledged events are lost.
Clients cannot be made to fetch before they produce, so the stack puts this gate on the
broker's public port and runs the broker on a private one (advertising the gate's address).
Whenever the broker (re)starts, the gate stays closed until it has

1. created every declared topic that is missing, with its declared partitions, so that no
   client's metadata request auto-creates one with the broker's default count, and
2. fetched from every partition of every topic, so that each watermark is loaded,

and then forwards requests and responses both ways. It watches the broker through one idle
connection: when that connection drops, the broker is gone, and the gate closes every client
connection and its port until the broker is back and prepared again.

The gate also lets one produce request at a time through to the broker, whatever its storage.
tansu 0.6.0 (checked with its memory storage) gives two produce requests to one partition that
arrive together (from two producers) the same offsets, and keeps only one of the two batches:
both producers are acknowledged and the other batch is lost (checked: three producers writing
1,200 records each to three partitions left 2,976 of the 3,600 on the topic). So a produce
request that asks for an acknowledgement (``acks`` ≠ 0) is forwarded only once the previous
one, from any client, has been answered.

The gate also keeps a consumer group's heartbeats, leaves and offset commits from reaching
the broker while another request of that group is there, for at most 5 s
(:class:`~finops.cli.stack.gate_turns.GroupTurn`; joins and syncs may go together: held back one
behind another, each rebalance of two optimizer workers stalled 13 to 31 s). tansu 0.6.0's
group coordinator (as its source reads) takes a group's state out of its cache while it
handles one of its requests but an offset fetch (a follower's join holds it for 3 s), a
request of the same group arriving meanwhile starts from an empty group, and the state it
gets is then stored with a conditional write that the local S3 server (s3rver 3.7.1) does
not check (it accepts a PUT with a failing ``If-Match`` or ``If-None-Match``). Seen: members
heartbeating every second on time answered UnknownMemberId and thrown out, each rejoin
making the others rejoin; two optimizer workers rebalanced every few seconds
(docs/optimizer.md, "Scaling out"), and two idle aiokafka consumers of one group were thrown
out too, never with tansu's memory storage, which refuses such a write (tansu then retries
the request). Every other request passes at once. Real Apache Kafka needs none of this; the
gate is part of the local stack only.

Run as ``python -m finops.cli.stack.broker_gate --listen HOST:PORT --broker HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.protocol.admin import CreateTopicsRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest

from finops.cli.stack.gate_turns import Connection, Turns
from finops.common.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger("finops.broker_gate")

_TOPIC_ALREADY_EXISTS = 36


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _topics_on(conn: AIOKafkaConnection) -> dict[str, int]:
    """Every topic on the broker with its number of partitions."""
    metadata = await conn.send(MetadataRequest(None))  # None: every topic
    topics = {}
    for entry in metadata.topics:
        name, partitions = entry[1], entry[-1]
        topics[name] = len(partitions)
    return topics


async def _create_missing(conn: AIOKafkaConnection, specs: tuple[TopicSpec, ...]) -> list[str]:
    existing = await _topics_on(conn)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    request = CreateTopicsRequest(
        create_topic_requests=[
            (s.name, s.partitions, 1, [], list(s.config().items())) for s in missing
        ],
        timeout=30_000,
        validate_only=False,
    )
    response = await conn.send(request)
    for name, code, *_ in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"creating topic {name} failed with error code {code}")
    return [s.name for s in missing]


async def _load_watermarks(conn: AIOKafkaConnection) -> int:
    """Fetch from offset 0 of every partition (one request); return how many were touched."""
    topics = await _topics_on(conn)
    # The broker only loads a watermark when it reads a batch: ask for a whole one.
    batch_bytes = 1024 * 1024
    partitions = [
        (name, [(p, 0, batch_bytes) for p in range(n)]) for name, n in sorted(topics.items())
    ]
    if partitions:
        await conn.send(
            FetchRequest(
                max_wait_time=100,
                min_bytes=1,
                max_bytes=64 * batch_bytes,
                isolation_level=0,
                topics=partitions,
            )
        )
    return sum(len(p) for _, p in partitions)


class BrokerGate:
    """Forwards ``listen`` to ``broker`` only while the broker is up and prepared."""

    def __init__(
        self,
        listen: tuple[str, int],
        broker: tuple[str, int],
        specs: tuple[TopicSpec, ...] = tuple(ALL_TOPICS),
    ) -> None:
        self.listen = listen
        self.broker = broker
        self.specs = specs
        self._pipes: set[asyncio.Task[None]] = set()
        #: set while the gate is closed: a connection the listener accepted just before it
        #: closed starts its task only afterwards, too late for ``_end_connections``
        self._shut = False
        self.turns = Turns()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            watch = await self._wait_for_broker(stop)
            if watch is None:
                return
            watch_reader, watch_writer = watch
            server = await self._open()
            self._shut = False
            log.info("gate open on %s:%s", *self.listen)
            gone = asyncio.create_task(watch_reader.read())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({gone, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (gone, stopping):
                task.cancel()
            self._shut = True
            server.close()
            await self._end_connections()
            await server.wait_closed()
            watch_writer.close()
            if not stop.is_set():
                log.warning("broker connection lost: gate closed until the broker is back")

    async def _end_connections(self) -> None:
        """End every client connection the gate forwards (the broker is gone or it stops)."""
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _open(self) -> asyncio.Server:
        for _ in range(100):  # the port of the last opening may linger for a moment
            try:
                return await asyncio.start_server(
                    self._serve_client, *self.listen, reuse_address=True
                )
            except OSError:
                await asyncio.sleep(0.05)
        return await asyncio.start_server(self._serve_client, *self.listen, reuse_address=True)

    async def _wait_for_broker(
        self, stop: asyncio.Event
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Once the broker answers and is prepared, an idle connection that EOFs when it dies."""
        while not stop.is_set():
            try:
                conn = await create_conn(*self.broker, request_timeout_ms=10_000)
                try:
                    created = await _create_missing(conn, self.specs)
                    touched = await _load_watermarks(conn)
                finally:
                    conn.close()
                watch = await asyncio.open_connection(*self.broker)
            except Exception as exc:  # not up yet, or still loading: try again shortly
                log.debug("broker not ready yet: %r", exc)
                await asyncio.sleep(0.1)
                continue
            log.info(
                "broker prepared: %d topics created, %d partitions loaded", len(created), touched
            )
            return watch
        return None

    async def _serve_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        if self._shut:
            # accepted as the gate closed: forwarded now, it could reach a broker that has
            # restarted but is not prepared yet (a produce overwriting stored records)
            client_writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        turns = self.turns.connection()
        broker_writer: asyncio.StreamWriter | None = None
        try:
            broker_reader, broker_writer = await self._connect_broker()
            await asyncio.gather(
                _forward_requests(client_reader, broker_writer, turns),
                _forward_responses(broker_reader, client_writer, turns),
            )
        except (OSError, asyncio.CancelledError):
            # the broker is gone, or the gate closed while this connection was opening or
            # open: it ends here.  The client's socket is closed on every path -- left open, a
            # client that connected as the broker died waited out its request timeout (40 s
            # for aiokafka) on a connection nothing served.
            pass
        finally:
            turns.release()
            client_writer.close()
            if broker_writer is not None:
                broker_writer.close()
            self._pipes.discard(task)

    async def _connect_broker(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection of one client's own to the broker."""
        return await asyncio.open_connection(*self.broker)


async def _frames(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The size-prefixed frames of a Kafka connection (each with its 4-byte size), until EOF."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
        while True:
            size = await reader.readexactly(4)
            yield size + await reader.readexactly(int.from_bytes(size, "big", signed=True))


async def _forward_requests(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turns: Connection
) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        async for frame in _frames(reader):
            await turns.before_request(frame)
            writer.write(frame)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.write_eof()


async def _forward_responses(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turns: Connection
) -> None:
    try:
        with contextlib.suppress(ConnectionError, OSError):
            async for frame in _frames(reader):
                turns.after_response(frame)
                writer.write(frame)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()
    finally:
        turns.release()  # the broker will not answer any more: the turn must not stay here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finops.cli.stack.broker_gate", description=__doc__
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT clients connect to")
    parser.add_argument("--broker", required=True, help="HOST:PORT of the broker itself")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    gate = BrokerGate(_address(args.listen), _address(args.broker))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await gate.run(stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
