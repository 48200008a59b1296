"""The SDK's event queue: the events recorded and not yet acknowledged, and the background
task that delivers them in batches (:class:`EventQueue`)."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Literal

from tenacity import AsyncRetrying, retry_if_exception_type, stop_never

from finops.client._answers import RetryAfterOrJitter, Transient
from finops.client._ingest import IngestPoster
from finops.client.errors import BufferFull, ClientClosed, RequestRefused

log = logging.getLogger("finops.client")

Overflow = Literal["block", "drop_oldest", "raise"]

#: events a full buffer under ``overflow="block"`` takes past ``max_buffer`` without waiting:
#: the reports of ``call()``s that ended (cancelled, interrupted) while the buffer was full;
#: past it such a report is dropped (logged, counted in ``stats.dropped``), so memory stays
#: bounded however many calls end so
ENDED_CALLS_RESERVE = 64


class EventQueue:
    """Events waiting for delivery (``buffer``, and ``in_flight`` being sent) and the sender
    that posts them to ingest in batches of ``batch_size``, lingering ``linger_s`` for a
    batch to fill, retrying transient faults for as long as it runs. A refusal that retrying
    cannot fix stops it: ``failure`` holds it, the events stay pending."""

    def __init__(
        self,
        ingest: IngestPoster,
        ingest_url: str,
        *,
        batch_size: int,
        linger_s: float,
        max_buffer: float,
        overflow: Overflow,
        max_backoff_s: float,
    ) -> None:
        self.ingest = ingest
        self.ingest_url = ingest_url
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_buffer = max_buffer
        self.overflow = overflow
        self.max_backoff_s = max_backoff_s
        self.buffer: collections.deque[dict[str, Any]] = collections.deque()
        self.in_flight = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requested = False
        #: set by the client's close(): send what is pending at once, and say nothing more
        #: when cancelled
        self.closing = False
        self.failure: RequestRefused | None = None
        #: set by stop(): no sender any more (a record_* waiting for room is woken to fail)
        self.stopped = False
        self._sender: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the platform."""
        return len(self.buffer) + self.in_flight

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def put(self, event: dict[str, Any], *, wait: bool = True) -> None:
        """Queue ``event`` under the overflow policy, and start the sender if need be.
        ``wait=False``: never wait for room (the report of a call that ends, cancelled, must
        not hold the agent back until ingest takes what is pending): under ``"block"`` the
        event is taken past ``max_buffer``, at most :data:`ENDED_CALLS_RESERVE` events past
        it; an event that finds no room (that reserve full, or ``"raise"``) is counted in
        ``stats.dropped`` and refused with :class:`BufferFull`."""
        stats = self.ingest.stats
        while len(self.buffer) >= self.max_buffer:
            if self.overflow == "drop_oldest":
                self.buffer.popleft()
                stats.dropped += 1
                self._say_dropped(stats.dropped)
                break
            if not wait:
                if (
                    self.overflow == "block"
                    and len(self.buffer) < self.max_buffer + ENDED_CALLS_RESERVE
                ):
                    break
                stats.dropped += 1
                raise BufferFull(
                    f"{len(self.buffer)} events pending: the buffer"
                    + (
                        f" and its reserve of {ENDED_CALLS_RESERVE} for the reports of calls"
                        " that ended are"
                        if self.overflow == "block"
                        else " is"
                    )
                    + " full; this report is dropped"
                )
            if self.overflow == "raise":
                raise BufferFull(f"{self.max_buffer} events pending")
            self._room.clear()
            self._wakeup.set()
            await self._room.wait()
            if self.stopped:  # close() ended: no room will ever come
                raise ClientClosed("the client was closed before this event found room")
            self.raise_if_failed()
        self.buffer.append(event)
        self._idle.clear()
        stats.recorded += 1
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="finops-client-sender")
        # The first pending event wakes an idle sender, which then lingers for more; a full
        # batch ends the linger. Waking it only at a full batch left a trickle of events
        # pending until a flush, close() or batch_size of them.
        if len(self.buffer) == 1 or len(self.buffer) >= self.batch_size:
            self._wakeup.set()

    def _say_dropped(self, dropped: int) -> None:
        """Log a drop under ``drop_oldest``: the first, then at every power of two (an agent
        that chose to lose events sees that it does, and how many, without a line per
        event)."""
        if dropped & (dropped - 1) == 0:
            log.warning(
                "dropped the oldest pending event: %d dropped so far (overflow='drop_oldest',"
                " %s events pending for %s)",
                dropped,
                self.max_buffer,
                self.ingest_url,
            )

    async def drain(self) -> None:
        """Send what is pending without lingering, and wait until none is (or a refusal)."""
        self._flush_requested = True
        self._wakeup.set()
        while self.pending and self.failure is None:
            self._idle.clear()
            await self._idle.wait()

    async def stop(self) -> None:
        """Stop the sender; what it was sending goes back to the buffer, still pending."""
        self.stopped = True
        self._room.set()
        if self._sender:
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass

    async def _send_loop(self) -> None:
        try:
            await self._send_batches()
        except asyncio.CancelledError:
            if self.pending and not self.closing:  # close() says so itself
                log.error(
                    "event delivery cancelled before close() (the event loop ended?): %d "
                    "events were not delivered; close the client, or use it as a context "
                    "manager",
                    self.pending,
                )
            raise

    async def _send_batches(self) -> None:
        while self.failure is None:
            if not self.buffer:
                self._idle.set()
                self._flush_requested = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self.buffer) < self.batch_size and not (self._flush_requested or self.closing):
                # Linger so small trickles still go out in batches.
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.linger_s)
                except TimeoutError:
                    pass
            batch = [self.buffer.popleft() for _ in range(min(self.batch_size, len(self.buffer)))]
            self.in_flight = len(batch)
            self._room.set()
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                # close() gave up waiting: what was not delivered stays pending, not lost
                self._requeue(batch)
                raise
            except Exception:
                log.exception("unexpected delivery failure; events requeued")
                self._requeue(batch)
                await asyncio.sleep(1.0)
            finally:
                self.in_flight = 0
                if not self.pending or self.failure is not None:
                    self._idle.set()

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        """Put what is left of the batch in flight back at the buffer's head (counted once
        in ``pending``: no longer in flight)."""
        self.buffer.extendleft(reversed(batch))
        self.in_flight = 0

    def _stop_delivery(self, refusal: RequestRefused, undelivered: list[dict[str, Any]]) -> None:
        """Keep the events, remember the refusal, wake everyone who waits on delivery."""
        self.buffer.extendleft(reversed(undelivered))
        self.failure = refusal
        log.error("event delivery stopped: %s", refusal)
        self._room.set()
        self._idle.set()

    # ---- delivery ----------------------------------------------------------------------

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send ``batch`` until none of it is left; ``batch`` always holds what is left (the
        sender puts that back in the buffer when it is cancelled)."""
        while batch:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Transient),
                wait=RetryAfterOrJitter(self.max_backoff_s),
                stop=stop_never,
                reraise=True,
                before_sleep=self._warn_retry,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        batch[:] = await self.ingest.post(batch)
            except RequestRefused as refusal:
                self._stop_delivery(refusal, batch)
                return

    def _warn_retry(self, state: Any) -> None:
        self.ingest.stats.retries += 1
        exc = state.outcome.exception()
        reason = getattr(exc, "reason", None) or repr(exc)
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "delivery to %s failed (%s); retry %d in %.1fs",
            self.ingest_url,
            reason,
            state.attempt_number,
            wait,
        )
