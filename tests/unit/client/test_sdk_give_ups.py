"""A self-healing call on an experiment assignment counts as a failure of its variant
whatever ends it: cancelled or interrupted (Ctrl-C) while the healer is asked or while it
waits before its next attempt, its last error is reported with the experiment's tag (again,
the same event, when it went out untagged already); the cancellation stays one, and a report
that cannot be queued (the client closing, its buffer full) never holds the agent back."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from typing import Any

import httpx
import pytest
from test_sdk_healing import OVERLOADED, APIStatusError, Platform, Provider, advice, sdk

from finops.client import AsyncFinOpsClient, FinOpsClient

EXPERIMENT = {"experiment_id": "exp-1", "variant": "B", "model": "claude"}
TAG = {"id": "exp-1", "variant": "B"}


class Hold:
    """A wait before the next attempt, or that next attempt, lasting until the test ends the
    call: ``reached`` says it began."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.reached = asyncio.Event()
        self.failed = False

    def now(self) -> float:  # the clock
        return 0.0

    async def sleep(self, seconds: float) -> None:
        if self.where == "wait":
            await self.hold()

    async def __call__(self, **arguments: Any) -> Any:  # the agent's LLM call
        if not self.failed:
            self.failed = True
            raise OVERLOADED
        await self.hold()

    async def hold(self) -> None:
        self.reached.set()
        await asyncio.Event().wait()


def errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "agent.error"]


@pytest.mark.parametrize("where", ["wait", "next attempt"])
async def test_a_call_cancelled_after_an_untagged_error_sends_it_again_tagged(where) -> None:
    # Its error went out untagged before the wait (another attempt was to follow), and the
    # agent's timeout cancelling the wait, or the next attempt, ended the call: the
    # experiment never counted it.
    platform = Platform([advice("wait", delay_ms=60_000)])
    hold = Hold(where)
    reported: list[str] = []
    async with sdk(platform) as finops:
        call = asyncio.create_task(
            finops.call(
                hold, task_type="qa", provider="anthropic", model="claude",
                experiment=EXPERIMENT, clock=hold, on_reported=reported.append,
            )
        )  # fmt: skip
        await hold.reached.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    first, again = errors(platform.events)
    # the same event, now tagged: every reader counts its id once, the experiments service
    # reads the tagged copy alone
    assert "experiment" not in first["data"] and again["data"]["experiment"] == TAG
    assert (again["id"], again["time"]) == (first["id"], first["time"])
    assert {**again["data"], "experiment": None} == {**first["data"], "experiment": None}
    assert reported == [first["id"], first["id"]]


def test_ctrl_c_in_the_blocking_wait_sends_the_last_error_again_tagged() -> None:
    class InterruptedClock:
        def now(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            raise KeyboardInterrupt  # Ctrl-C during the wait

    platform = Platform([advice("wait", delay_ms=60_000)])
    with blocking(platform) as finops, pytest.raises(KeyboardInterrupt):
        finops.call(
            Provider(OVERLOADED), task_type="qa", provider="anthropic", model="claude",
            experiment=EXPERIMENT, clock=InterruptedClock(),
        )  # fmt: skip
    first, again = errors(platform.events)
    assert "experiment" not in first["data"] and again["data"]["experiment"] == TAG
    assert again["id"] == first["id"]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Ctrl-C (SIGINT) interrupts the main thread",
)
def test_ctrl_c_while_the_blocking_client_asks_the_healer_reports_the_error_tagged() -> None:
    # The advice step runs on the client's loop: Ctrl-C ended the agent's call but not it,
    # which went on waiting for the healer; its error was never queued (the healer and the
    # optimizer lost it too) or, advice arriving later, queued untagged.
    main = threading.main_thread().ident
    assert main is not None
    events: list[dict[str, Any]] = []

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, while the healer is asked
            await asyncio.Event().wait()  # it never answers
        events.extend(json.loads(request.content))
        return httpx.Response(202, json={"accepted": 1})

    with blocking(platform) as finops, pytest.raises(KeyboardInterrupt):  # type: ignore[arg-type]
        finops.call(
            Provider(OVERLOADED), task_type="qa", provider="anthropic", model="claude",
            experiment=EXPERIMENT,
        )  # fmt: skip
    assert [(e["data"].get("experiment"), e["data"]["model"]) for e in errors(events)] == [
        (TAG, "claude")
    ]


async def test_a_cancellation_while_the_client_closes_stays_a_cancellation(caplog) -> None:
    # Its report cannot be queued on a closing client: ClientClosed replaced the agent's
    # CancelledError (an asyncio.timeout() around the call then raised ClientClosed, not
    # TimeoutError); it is logged, and the cancellation goes on.
    asked = asyncio.Event()

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            asked.set()
            await asyncio.Event().wait()
        return httpx.Response(202, json={"accepted": 1})

    finops = sdk(platform)  # type: ignore[arg-type]
    call = asyncio.create_task(
        finops.call(
            Provider(OVERLOADED), task_type="qa", provider="p", model="m", experiment=EXPERIMENT
        )
    )
    await asyncio.wait_for(asked.wait(), 5)
    await finops.close()
    call.cancel()
    with caplog.at_level("ERROR", logger="finops.client"), pytest.raises(asyncio.CancelledError):
        await call
    assert "ended after an error that could not be reported" in caplog.text
    assert "the client is closed" in caplog.text


async def test_a_call_cancelled_while_the_buffer_is_full_reports_its_give_up_at_once() -> None:
    # overflow="block": the error waits for room that ingest (stuck) never makes; cancelled,
    # the call reports it without waiting (past max_buffer), the cancellation at once.
    stuck = asyncio.Event()

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            return httpx.Response(200, json=advice("wait", delay_ms=60_000))
        stuck.set()
        await asyncio.Event().wait()  # ingest never answers
        raise AssertionError

    finops = AsyncFinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform), batch_size=1, max_buffer=1,
    )  # fmt: skip
    for _ in range(2):  # one in flight (stuck), one filling the buffer
        await finops.record_error(task_type="qa", provider="p", model="m", message="x")
    await asyncio.wait_for(stuck.wait(), 5)
    call = asyncio.create_task(
        finops.call(
            Provider(APIStatusError(503, {})), task_type="qa", provider="p", model="m",
            experiment=EXPERIMENT,
        )
    )  # fmt: skip
    while finops._queue._room.is_set():  # the call's error waits for room
        await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)
    assert finops.pending == 3
    assert finops._queue.buffer[-1]["data"]["experiment"] == TAG
    with pytest.raises(TimeoutError):  # ingest never answers: close() says what is lost
        await finops.close(timeout=0)


def blocking(platform: Any) -> FinOpsClient:
    return FinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform), max_backoff_s=0.01,
    )  # fmt: skip
