"""A blocking wrapper for agents that are not async: the async client on its own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from finops.client._healing import CallOptions, Clock, SelfHealingCall
from finops.client.client import AsyncFinOpsClient, ClientStats
from finops.client.errors import ClientClosed

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger("finops.client")

#: how long a client never closed may take to deliver what is pending at exit
UNCLOSED_DELIVERY_TIMEOUT_S = 10.0

#: how long the blocking ``call()`` waits, once it ended on an exception, for its give-up to
#: be queued on the client's loop (no send: a put that never waits for room; ending the
#: advice step still in flight there)
ENDED_TIMEOUT_S = 5.0

#: the finalizers of the clients alive and not closed, run when the interpreter exits
_UNCLOSED: set[weakref.finalize[Any, Any]] = set()


def _close_unclosed(
    loop: asyncio.AbstractEventLoop, client: AsyncFinOpsClient, thread: threading.Thread
) -> None:
    """Close a :class:`FinOpsClient` its program never closed (at exit, or when collected)."""
    if not thread.is_alive() or threading.current_thread() is thread:
        # no thread: a process forked from the one that made the client (its events are the
        # parent's to deliver); on the client's own thread, waiting for it would never end
        return
    try:
        if client.pending:
            log.warning(
                "the client was never closed: delivering %d pending events (at most %.0f s)",
                client.pending,
                UNCLOSED_DELIVERY_TIMEOUT_S,
            )
        future = asyncio.run_coroutine_threadsafe(client.close(UNCLOSED_DELIVERY_TIMEOUT_S), loop)
        future.result(UNCLOSED_DELIVERY_TIMEOUT_S + 1.0)
    except Exception as exc:  # the program is ending: say what was lost, do not raise
        log.error("closing a client that was never closed: %r", exc)
    finally:
        loop.call_soon_threadsafe(loop.stop)


def _close_unclosed_at_exit() -> None:
    for finalizer in list(_UNCLOSED):
        finalizer()


def _on_interpreter_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` when the interpreter exits, before its thread pools shut down.

    A plain ``atexit`` hook runs after them: the client's loop could then no longer resolve a
    host name (``getaddrinfo`` runs on a pool thread), and delivery to ``https://ingest.example``
    failed. ``threading._register_atexit`` (CPython 3.9+, how ``concurrent.futures`` stops its
    pools) runs hooks in reverse order, so this one, registered after the pools' module is
    imported, runs before theirs."""
    import concurrent.futures.thread  # noqa: F401  (its hook first: ours then runs before it)

    register = getattr(threading, "_register_atexit", None)
    if register is None:  # another interpreter: at least at exit
        import atexit

        atexit.register(callback)
    else:
        register(callback)


_on_interpreter_exit(_close_unclosed_at_exit)


def _blocking(
    method: Callable[Concatenate[AsyncFinOpsClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[FinOpsClient, P], T]:
    """The blocking twin of an :class:`AsyncFinOpsClient` method: its parameters (for mypy,
    ``help()`` and ``inspect.signature``), its docstring, run on the client's thread."""

    @functools.wraps(method)
    def blocking(self: FinOpsClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._client, *args, **kwargs))

    blocking.__qualname__ = f"FinOpsClient.{method.__name__}"
    return blocking


def _arguments_of(
    init: Callable[Concatenate[AsyncFinOpsClient, P], None],
) -> Callable[[Callable[..., None]], Callable[Concatenate[FinOpsClient, P], None]]:
    """Give ``FinOpsClient.__init__`` the parameters of ``AsyncFinOpsClient.__init__``."""

    def same(blocking_init: Callable[..., None]) -> Callable[Concatenate[FinOpsClient, P], None]:
        functools.update_wrapper(blocking_init, init, assigned=("__doc__",))
        blocking_init.__wrapped__ = init  # type: ignore[attr-defined]
        return blocking_init

    return same


class FinOpsClient:
    """Same arguments and methods as :class:`AsyncFinOpsClient`, but blocking.

    Example::

        with FinOpsClient(api_key="fo_ak_...", agent_id="bot") as finops:
            finops.record_call(task_type="qa", provider="openai", model="gpt-4o-mini",
                               usage={"input_tokens": 10, "output_tokens": 5}, latency_ms=300)
    """

    @_arguments_of(AsyncFinOpsClient.__init__)
    def __init__(self, **kwargs: Any) -> None:
        #: set by close() (and a refused construction) under ``_lock``, which every
        #: submission to the loop holds too: nothing is submitted to a loop being stopped
        #: (the loop's ``is_running()`` is no test: false until the new thread runs it)
        self._lock = threading.Lock()
        self._closed = False
        #: what was submitted and has not finished: failed with ClientClosed once the loop
        #: stops, so no thread waits for ever on a coroutine that will never run
        self._submitted: set[concurrent.futures.Future[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="finops-client", daemon=True
        )
        self._thread.start()
        try:
            self._client: AsyncFinOpsClient = self._run(self._make(kwargs))
        except BaseException:  # refused arguments: no thread left running for nothing
            with self._lock:
                self._closed = True
            self._stop_loop()
            self._loop.close()
            raise
        # a client never closed delivers what is pending when it is collected or the
        # interpreter exits, instead of losing it with the daemon thread
        self._finalizer = weakref.finalize(
            self, _close_unclosed, self._loop, self._client, self._thread
        )
        self._finalizer.atexit = False  # _close_unclosed_at_exit runs it, earlier
        _UNCLOSED.difference_update([f for f in _UNCLOSED if not f.alive])  # collected ones
        _UNCLOSED.add(self._finalizer)

    @staticmethod
    async def _make(kwargs: dict[str, Any]) -> AsyncFinOpsClient:
        return AsyncFinOpsClient(**kwargs)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Hand ``coro`` to the client's loop, or raise ClientClosed when it is closed."""
        with self._lock:
            if self._closed:
                coro.close()
                client = getattr(self, "_client", None)
                raise client._closed_error() if client else ClientClosed("the client is closed")
            return self._submit_unlocked(coro)

    def _submit_unlocked(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._submitted.add(future)
        future.add_done_callback(self._submitted.discard)
        return future

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._submit(coro).result(timeout)

    def _stop_loop(self) -> None:
        """Stop the loop (``_closed`` is set: nothing more is submitted) and fail what it will
        never run with ClientClosed."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        for future in list(self._submitted):
            if not future.done():
                future.set_exception(ClientClosed("the client was closed before this finished"))

    record_call = _blocking(AsyncFinOpsClient.record_call)
    record_error = _blocking(AsyncFinOpsClient.record_error)

    def call(self, fn: Callable[..., Any], **options: Unpack[CallOptions]) -> Any:
        """:meth:`AsyncFinOpsClient.call` (same options) for a blocking ``fn`` and ``trim``:
        they run on the calling thread, the reporting and advice on the client's."""
        healing = self._client._self_healing(options)
        try:
            return self._heal(fn, healing, options.get("clock"))
        except BaseException:
            # whatever ended the call (its give-up, Ctrl-C while the healer is asked or
            # while it waits before its next attempt): its give-up is reported
            self._ended(healing)
            raise

    def _heal(self, fn: Callable[..., Any], healing: SelfHealingCall, clock: Clock | None) -> Any:
        """:meth:`call`'s loop."""
        while True:
            began = healing.clock.now()
            try:
                result = fn(**healing.state.arguments())
                healing.answered = True  # (paid for) whatever ends the call now
            except Exception as exc:
                step = self._run(healing.after_failure(exc))
                if step.give_up:
                    raise
                if healing.trim is not None and step.trim_to is not None:
                    healing.trim(step.trim_to)
                if clock is None:
                    time.sleep(step.delay_s)
                else:  # the agent's clock: a blocking sleep, or a coroutine run to its end
                    waited = clock.sleep(step.delay_s)
                    if asyncio.iscoroutine(waited):
                        self._run(waited)
                continue
            except BaseException as exc:  # interrupted while fn ran (Ctrl-C)
                healing.interrupted(exc)
                raise
            try:
                self._run(healing.succeeded(result, (healing.clock.now() - began) * 1000.0))
            except ClientClosed as exc:  # closed while fn ran: its answer is not lost
                healing.reports.report_lost(exc)
            return result

    def _ended(self, healing: SelfHealingCall) -> None:
        """:meth:`SelfHealingCall.ended` on the client's loop, waited for at most
        :data:`ENDED_TIMEOUT_S`; the agent's exception stands whatever happens here (the
        client closed meanwhile: nothing is left to queue the report on, which is logged)."""
        try:
            self._submit(healing.ended()).result(ENDED_TIMEOUT_S)
        except TimeoutError:
            log.error(
                "the call to %s/%s ended; its last error was not queued as its give-up within"
                " %.0f s (the client's loop is busy: it may still be)",
                healing.state.provider,
                healing.state.model,
                ENDED_TIMEOUT_S,
            )
        except Exception as exc:
            if healing.last_error is None:  # nothing was left to report
                return
            log.error(
                "the call to %s/%s ended; its last error could not be reported as its give-up: %r",
                healing.state.provider,
                healing.state.model,
                exc,
            )

    recommend = _blocking(AsyncFinOpsClient.recommend)
    assign = _blocking(AsyncFinOpsClient.assign)
    flush = _blocking(AsyncFinOpsClient.flush)

    def close(self, timeout: float | None = None) -> None:
        """Deliver everything pending, then release the connection and the client's thread
        (as :meth:`AsyncFinOpsClient.close`)."""
        self._finalizer.detach()
        _UNCLOSED.discard(self._finalizer)
        with self._lock:
            if self._closed:
                return
            closing = self._submit_unlocked(self._client.close(timeout))
            self._closed = True  # what comes after the close is refused, not left waiting
        try:
            closing.result()
        finally:
            self._stop_loop()

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the platform."""
        return self._client.pending

    @property
    def stats(self) -> ClientStats:
        """Counts of the events recorded, delivered, rejected and dropped, retries and
        batches."""
        return self._client.stats

    def __enter__(self) -> FinOpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
