"""A TCP link to a real server that a test can freeze or cut (import as ``from fault_injection
import FaultyLink``).

A service pointed at the link instead of at PostgreSQL or Redis sees what it would see if the
server itself froze (SIGSTOP: connections stay open, new ones are accepted, nothing answers)
or went down (every connection reset, new ones refused), without touching the server the rest
of the session shares. The link runs in the test's event loop, like the in-process apps.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class FaultyLink:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port)
        self._parts = parts
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._down = False  # cut: also refuse connections accepted just before the cut
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._drop_answer = False
        self.port = 0

    @property
    def url(self) -> str:
        """The target's URL with the link's address in place of the server's."""
        netloc = f"127.0.0.1:{self.port}"
        if self._parts.username:
            credentials = self._parts.username
            if self._parts.password:
                credentials += f":{self._parts.password}"
            netloc = f"{credentials}@{netloc}"
        return urlunsplit(self._parts._replace(netloc=netloc))

    async def start(self) -> FaultyLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def freeze(self) -> None:
        """Stop moving bytes; connections, old and new, stay open and unanswered."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def drop_next_answer(self) -> None:
        """Reset the connection that next carries bytes back from the server, instead of
        passing them on: the server did what it was asked, and the client never hears so (a
        link that dropped just before the answer came)."""
        self._drop_answer = True

    async def cut(self) -> None:
        """Reset every connection and refuse new ones, as a server that went down."""
        self._down = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        """Listen again on the same port and let bytes flow."""
        self.thaw()
        self._down = False
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()
        self.thaw()  # the connections still waiting see the cut and end
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._tasks.add(this)
        self._writers.add(writer)
        ends = [writer]
        try:
            await self._flowing.wait()  # a frozen server accepts, then never answers
            if self._down:
                return
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            ends.append(up_writer)
            if self._down:
                return
            self._writers.add(up_writer)
            pumps = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer, answers=True)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass  # the server itself is unreachable: the client sees its connection reset
        finally:
            for end in ends:
                end.transport.abort()
                self._writers.discard(end)
            self._tasks.discard(this)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool = False
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                if answers and self._drop_answer:
                    self._drop_answer = False
                    return  # the connection is reset, the answer never sent
                writer.write(chunk)
                await writer.drain()
