"""The delivery of the client's events, from queueing to close (:class:`Delivery`): each
event built as a CloudEvent and checked before it is queued (refused once the client is
closing), ``flush()`` waiting until what was queued is delivered, and ``close()`` delivering
what is pending, then saying what was not."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from finops.client._json_values import json_values
from finops.client._names import refuse_control_characters
from finops.client._queue import EventQueue
from finops.client.errors import ClientClosed, RequestRefused

log = logging.getLogger("finops.client")


class Delivery:
    """One client's events on their way to ingest: queued on ``queue`` (whose sender posts
    them); ``http``: the client's connections, released when it closes."""

    def __init__(self, queue: EventQueue, http: httpx.AsyncClient) -> None:
        self.queue = queue
        self.http = http
        self.ingest_url = queue.ingest_url
        #: set by :meth:`close`: no sender left, the connections released
        self.closed = False

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the platform."""
        return self.queue.pending

    async def enqueue(
        self,
        event_type: str,
        data: dict[str, Any],
        event_id: str | None,
        *,
        time: str | None = None,
        wait: bool = True,
    ) -> str:
        """Queue one event; ``time``: its time (default now); ``wait=False``: never wait for
        room in the buffer (:meth:`EventQueue.put`)."""
        if self.queue.closing:
            raise self.closed_error()
        self.queue.raise_if_failed()
        event = {
            "id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "source": data["agent_id"],
            "specversion": "1.0",
            "time": time or _now(),
            # numpy's numbers as plain ones; a value JSON cannot carry could never be sent
            "data": json_values(data, "data"),
        }
        refuse_control_characters(event)  # ingest would refuse it: say so before queueing
        await self.queue.put(event, wait=wait)
        return str(event["id"])

    async def flush(self, timeout: float | None, *, closing: bool = False) -> None:
        """The client's ``flush()`` once it checked it is open; ``closing``: :meth:`close`'s,
        which says itself what was not delivered."""
        self.queue.raise_if_failed()
        if self.pending:
            try:
                await asyncio.wait_for(self.queue.drain(), timeout)
            except TimeoutError as exc:
                if closing:
                    raise
                events = "1 event" if self.pending == 1 else f"{self.pending} events"
                then = (
                    "the client is closing (close() says what was lost)"
                    if self.queue.closing
                    else "still retrying them (flush() again, or close() to deliver them or "
                    "say what was lost)"
                )
                raise TimeoutError(
                    f"{events} not delivered to {self.ingest_url} within {timeout} s; {then}"
                ) from exc
            self.queue.raise_if_failed()
        self.queue.ingest.raise_rejected()

    def closed_error(self) -> ClientClosed:
        """What a closed client raises when used: with the number of events its ``close()``
        did not deliver, if any."""
        if self.closed and self.pending:
            undelivered = "1 event was" if self.pending == 1 else f"{self.pending} events were"
            return ClientClosed(f"the client is closed: {undelivered} not delivered")
        return ClientClosed("the client is closed")

    async def close(self, timeout: float | None) -> None:
        """The client's ``close()``: deliver everything pending (within ``timeout``
        seconds), then stop the sender and release the connections."""
        if self.closed:
            return
        self.queue.closing = True
        try:
            await self.flush(timeout, closing=True)
        except RequestRefused as exc:
            undelivered = "1 event was" if self.pending == 1 else f"{self.pending} events were"
            raise RequestRefused(
                f"{exc}; {undelivered} not delivered",
                status=exc.status,
                code=exc.code,
                url=exc.url,
            ) from exc
        except TimeoutError as exc:
            # the batch in flight is put back in the buffer when the sender is cancelled
            # below: ``pending`` still counts it, and the error says how many were not sent
            undelivered = "1 event was" if self.pending == 1 else f"{self.pending} events were"
            message = f"{undelivered} not delivered to {self.ingest_url} within {timeout} s"
            log.error("closing: %s", message)
            raise TimeoutError(message) from exc
        finally:
            self.closed = True
            await self.queue.stop()
            await self.http.aclose()


def _now() -> str:
    return datetime.now(UTC).isoformat()
