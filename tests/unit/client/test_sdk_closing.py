"""The blocking client's thread and closing: made, used by several threads, closed."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from test_sdk import CALL, ScriptedIngest, client

from finops.client import ClientClosed, FinOpsClient
from finops.client import sync as sync_module


def blocking_client(ingest, **kwargs) -> FinOpsClient:
    return FinOpsClient(
        ingest_url="http://ingest", agent_id="bot", token="t",
        transport=httpx.MockTransport(ingest), max_backoff_s=0.01, **kwargs,
    )  # fmt: skip


def test_a_blocking_client_made_before_its_thread_runs_its_loop_is_not_closed(monkeypatch):
    # FinOpsClient() raised ClientClosed now and then (10 in 300 with busy CPUs): the loop's
    # is_running() was read as "closed", and it is false until the new thread runs the loop.
    # Here the thread starts only when the first coroutine is handed to the loop.
    deferred: list[threading.Thread] = []
    real_start = threading.Thread.start
    real_submit = asyncio.run_coroutine_threadsafe

    class DeferredThread(threading.Thread):
        def start(self) -> None:
            deferred.append(self)

    def submit(coro, loop):
        while deferred:
            real_start(deferred.pop())
        return real_submit(coro, loop)

    monkeypatch.setattr(sync_module.threading, "Thread", DeferredThread)
    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", submit)
    ingest = ScriptedIngest()
    with blocking_client(ingest) as c:
        event_id = c.record_call(**CALL)
    assert ingest.ids == [event_id]


class SpyLock:
    """The client's lock, telling ``reached`` when the closing thread asks for it."""

    def __init__(self, lock, closing: list[threading.Thread], reached: threading.Event):
        self.lock, self.closing, self.reached = lock, closing, reached

    def __enter__(self):
        if threading.current_thread() in self.closing:
            self.reached.set()
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


def test_a_record_racing_a_close_on_another_thread_never_waits_for_ever(monkeypatch):
    # The record checked that the loop ran, then another thread's close() stopped it, then the
    # record handed its coroutine to the stopped loop and waited for ever. Here the close runs
    # between the two (until it finishes, or until it waits for the client's lock).
    ingest = ScriptedIngest()
    c = blocking_client(ingest)
    real_submit = asyncio.run_coroutine_threadsafe
    closing: list[threading.Thread] = []
    reached = threading.Event()
    c._lock = SpyLock(getattr(c, "_lock", threading.Lock()), closing, reached)  # type: ignore[assignment]

    def close_in_another_thread() -> None:
        c.close()
        reached.set()

    def submit(coro, loop):
        if threading.current_thread().name == "recorder" and not closing:
            closing.append(threading.Thread(target=close_in_another_thread, daemon=True))
            closing[0].start()
            reached.wait()
        return real_submit(coro, loop)

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", submit)
    answers: list[object] = []

    def record() -> None:
        try:
            answers.append(c.record_call(**CALL))
        except ClientClosed as exc:
            answers.append(exc)

    recorder = threading.Thread(target=record, name="recorder", daemon=True)
    recorder.start()
    recorder.join(30)  # a guard: it waited for ever
    closing[0].join(30)
    assert not recorder.is_alive() and not closing[0].is_alive()
    # the record went first (the close waited for it): delivered by the close
    assert ingest.ids == answers and len(answers) == 1


def test_a_record_waiting_for_room_when_another_thread_closes_raises_client_closed():
    # It waited for ever: the loop stopped with the record still waiting for room.
    gate = threading.Event()
    posted = threading.Event()

    async def hangs(request: httpx.Request) -> httpx.Response:
        posted.set()
        await asyncio.Event().wait()  # ingest never answers
        raise AssertionError

    c = blocking_client(hangs, max_buffer=1, linger_s=0, batch_size=1)
    queue = c._client._queue

    class SpyRoom(asyncio.Event):
        async def wait(self):
            gate.set()
            return await super().wait()

    room = SpyRoom()
    room.set()
    queue._room = room
    c.record_call(**CALL)  # sent, never answered
    posted.wait(30)
    c.record_call(**CALL)  # in the buffer: it is full
    answers: list[object] = []

    def record() -> None:
        try:
            answers.append(c.record_call(**CALL))
        except ClientClosed as exc:
            answers.append(exc)

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    assert gate.wait(30)  # the record waits for room
    with pytest.raises(TimeoutError, match="2 events were not delivered"):
        c.close(timeout=0.1)
    recorder.join(30)  # a guard: it waited for ever
    assert not recorder.is_alive()
    assert len(answers) == 1 and isinstance(answers[0], ClientClosed), answers


async def test_an_async_record_waiting_for_room_raises_client_closed_when_closed():
    # The async client's record_call waiting for room when another task closed the client
    # waited for ever too: no sender was left to make room.
    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError

    c = client(hangs, max_buffer=1, linger_s=0, batch_size=1)
    gate = asyncio.Event()

    class SpyRoom(asyncio.Event):
        async def wait(self):
            gate.set()
            return await super().wait()

    c._queue._room = SpyRoom()
    c._queue._room.set()
    await c.record_call(**CALL)
    await c.record_call(**CALL)
    gate.clear()
    waiting = asyncio.create_task(c.record_call(**CALL))
    await gate.wait()  # it waits for room
    with pytest.raises(TimeoutError):
        await c.close(timeout=0.1)
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(waiting, 10)


def test_both_clients_after_close_raise_client_closed_with_the_events_not_delivered():
    # After close(timeout=…) ran out with an event pending, the blocking client's flush()
    # raised a bare 'the client is closed' where the async client's said how many were lost;
    # after a clean close the blocking flush() raised and the async one returned.
    refused = ScriptedIngest(statuses=[503] * 100_000)
    c = blocking_client(refused)
    c.record_call(**CALL)
    with pytest.raises(TimeoutError):
        c.close(timeout=0.2)
    for ask in (c.flush, lambda: c.record_call(**CALL)):
        with pytest.raises(ClientClosed) as raised:
            ask()
        assert str(raised.value) == "the client is closed: 1 event was not delivered"
    c.close()  # closing again does nothing

    c = blocking_client(ScriptedIngest())
    c.close()
    with pytest.raises(ClientClosed, match=r"^the client is closed$"):
        c.flush()

    async def async_client_after_a_clean_close() -> None:
        a = client(ScriptedIngest())
        await a.close()
        with pytest.raises(ClientClosed, match=r"^the client is closed$"):
            await a.flush()
        await a.close()

    asyncio.run(async_client_after_a_clean_close())


async def test_a_flush_timing_out_while_another_task_closes_says_how_many_and_why() -> None:
    # it raised a bare TimeoutError, with no message
    release = asyncio.Event()
    ingest = ScriptedIngest()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ingest(request)

    c = client(slow)
    await c.record_call(**CALL)
    closing = asyncio.create_task(c.close())
    await asyncio.sleep(0)  # one turn of the loop (no wait): the close sets closing first
    with pytest.raises(TimeoutError) as raised:
        await c.flush(timeout=0.05)
    assert str(raised.value) == (
        "1 event not delivered to http://ingest within 0.05 s; the client is closing (close() "
        "says what was lost)"
    )
    release.set()
    await asyncio.wait_for(closing, 30)
    assert len(ingest.ids) == 1
