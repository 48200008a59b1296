"""A self-healing call on an experiment assignment counts as a failure of its variant
whatever ends it: cancelled or interrupted (Ctrl-C) while the healer is asked or while it
waits before its next attempt, its last error is reported with the experiment's tag (again,
the same event, when it went out untagged already); a call that answered, however it ends,
reports no error; the cancellation stays one, and a report that cannot be queued (the client
closing, its buffer and its reserve full) never holds the agent back."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
from test_sdk_healing import OVERLOADED, APIStatusError, Platform, Provider, advice, sdk

from finops.client import AsyncFinOpsClient, BufferFull, FinOpsClient, _queue

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


@pytest.mark.parametrize(
    ("where", "experiment"),
    [("wait", EXPERIMENT), ("next attempt", EXPERIMENT), ("wait", None)],
)
async def test_a_call_cancelled_after_an_untagged_error_sends_it_again_tagged(
    where, experiment
) -> None:
    # Its error went out untagged before the wait (another attempt was to follow), and the
    # agent's timeout cancelling the wait, or the next attempt, ended the call: the
    # experiment never counted it. A call on no experiment has nothing to send again.
    platform = Platform([advice("wait", delay_ms=60_000)])
    hold = Hold(where)
    reported: list[str] = []
    async with sdk(platform) as finops:
        call = asyncio.create_task(
            finops.call(
                hold, task_type="qa", provider="anthropic", model="claude",
                experiment=experiment, clock=hold, on_reported=reported.append,
            )
        )  # fmt: skip
        await hold.reached.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    if experiment is None:
        [only] = errors(platform.events)
        assert "experiment" not in only["data"] and reported == [only["id"]]
        return
    first, again = errors(platform.events)
    # the same event, now tagged: every reader counts its id once, the experiments service
    # reads the tagged copy alone
    assert "experiment" not in first["data"] and again["data"]["experiment"] == TAG
    assert (again["id"], again["time"]) == (first["id"], first["time"])
    assert {**again["data"], "experiment": None} == {**first["data"], "experiment": None}
    assert reported == [first["id"], first["id"]]


@pytest.mark.parametrize("experiment", [EXPERIMENT, None])
async def test_a_call_cancelled_during_its_first_attempt_is_its_variants_give_up(
    experiment,
) -> None:
    # It reported nothing: the variant whose slow calls the agents' timeouts cut short was
    # judged on its fast ones alone. Without an experiment nothing is reported (an agent may
    # cancel the slower of two raced calls on purpose).
    started = asyncio.Event()

    async def slow_provider(**arguments: Any) -> Any:
        started.set()
        await asyncio.Event().wait()

    platform = Platform([])
    reported: list[str] = []
    async with sdk(platform) as finops:
        call = asyncio.create_task(
            finops.call(
                slow_provider, task_type="qa", provider="anthropic", model="claude",
                experiment=experiment, on_reported=reported.append,
            )
        )  # fmt: skip
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert platform.asked == []  # a give-up: the healer is not asked what to do
    if experiment is None:
        assert platform.events == [] and reported == []
        return
    [given_up] = platform.events
    assert given_up["type"] == "agent.error" and reported == [given_up["id"]]
    assert (given_up["data"]["experiment"], given_up["data"]["model"]) == (TAG, "claude")
    assert given_up["data"]["error"]["message"].startswith("asyncio.exceptions.CancelledError")


def test_ctrl_c_during_the_blocking_first_attempt_is_its_variants_give_up() -> None:
    def interrupted_provider(**arguments: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while the provider is slow

    platform = Platform([])
    with blocking(platform) as finops, pytest.raises(KeyboardInterrupt):
        finops.call(
            interrupted_provider, task_type="qa", provider="anthropic", model="claude",
            experiment=EXPERIMENT,
        )  # fmt: skip
    [given_up] = platform.events
    assert (given_up["data"]["experiment"], given_up["data"]["model"]) == (TAG, "claude")
    assert given_up["data"]["error"]["message"].startswith("builtins.KeyboardInterrupt")


def test_a_first_attempt_ended_by_system_exit_reports_no_give_up() -> None:
    # only a cancellation or Ctrl-C is the agent ending the call; SystemExit ends the process
    def exiting_provider(**arguments: Any) -> Any:
        raise SystemExit(3)

    platform = Platform([])
    with blocking(platform) as finops, pytest.raises(SystemExit):
        finops.call(
            exiting_provider, task_type="qa", provider="anthropic", model="claude",
            experiment=EXPERIMENT,
        )  # fmt: skip
    assert platform.events == []


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


def test_ctrl_c_while_the_blocking_client_asks_the_healer_ends_the_advice_step(
    monkeypatch,
) -> None:
    # The advice step runs on the client's loop: Ctrl-C ended the agent's call but not it,
    # which went on waiting for the healer; its error was never queued (the healer and the
    # optimizer lost it too) or, advice arriving later, queued untagged.
    asked = threading.Event()
    events: list[dict[str, Any]] = []

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            asked.set()
            await asyncio.Event().wait()  # it never answers
        events.extend(json.loads(request.content))
        return httpx.Response(202, json={"accepted": 1})

    advising: list[Any] = []
    with blocking(platform) as finops:

        def interrupted(coro: Any, timeout: float | None = None) -> Any:
            # the agent's thread, waiting for the advice step, gets Ctrl-C once the healer
            # is asked (what SIGINT raises there, without a signal)
            advising.append(finops._submit(coro))
            assert asked.wait(5), "the healer was never asked"
            raise KeyboardInterrupt

        monkeypatch.setattr(finops, "_run", interrupted)
        with pytest.raises(KeyboardInterrupt):
            finops.call(
                Provider(OVERLOADED), task_type="qa", provider="anthropic", model="claude",
                experiment=EXPERIMENT,
            )  # fmt: skip
        assert advising[0].cancelled()  # the advice step on the client's loop ended
    assert [(e["data"].get("experiment"), e["data"]["model"]) for e in errors(events)] == [
        (TAG, "claude")
    ]


def test_an_answered_call_interrupted_before_its_report_sends_no_error() -> None:
    # The call answered (and was paid for) on its second attempt; Ctrl-C as its latency was
    # measured ended it: it was reported as a give-up of the experiment.
    class Clock:
        answered = False

        def now(self) -> float:
            if self.answered:
                raise KeyboardInterrupt
            return 0.0

        def sleep(self, seconds: float) -> None:
            pass

    clock = Clock()
    provider = Provider(OVERLOADED)

    def fn(**arguments: Any) -> Any:
        result = provider(**arguments)
        clock.answered = True
        return result

    platform = Platform([advice("retry")])
    with blocking(platform) as finops, pytest.raises(KeyboardInterrupt):
        finops.call(
            fn, task_type="qa", provider="anthropic", model="claude", experiment=EXPERIMENT,
            clock=clock,
        )  # fmt: skip
    assert [e["data"].get("experiment") for e in platform.events] == [None]


async def test_an_answered_call_whose_clock_raises_sends_no_error() -> None:
    # the async client's loop: the same, its clock raising once the call answered
    class Clock:
        answered = False

        def now(self) -> float:
            if self.answered:
                raise RuntimeError("the clock broke")
            return 0.0

        async def sleep(self, seconds: float) -> None:
            pass

    clock = Clock()
    provider = Provider(OVERLOADED)

    def fn(**arguments: Any) -> Any:
        result = provider(**arguments)
        clock.answered = True
        return result

    platform = Platform([advice("retry")])
    async with sdk(platform) as finops:
        with pytest.raises(RuntimeError, match="the clock broke"):
            await finops.call(
                fn, task_type="qa", provider="anthropic", model="claude",
                experiment=EXPERIMENT, clock=clock,
            )  # fmt: skip
    assert [e["data"].get("experiment") for e in platform.events] == [None]


@pytest.mark.parametrize(
    ("experiment", "action", "tags"),
    [(None, "wait", [None]), (EXPERIMENT, "abort", [TAG]), (EXPERIMENT, "wait", [None, TAG])],
)
async def test_an_on_reported_that_raises_sends_its_error_again_only_as_a_give_up(
    experiment, action, tags, caplog
) -> None:
    # on_reported raised on the error's id before the call had noted it was queued: the call
    # ended on that exception and sent the error again (untagged or tagged twice), logging
    # that it could not be reported. A call on an experiment that was to try again still
    # ends after an error: that is its give-up, the tagged copy.
    def on_reported(event_id: str) -> None:
        raise LookupError("the agent's callback")

    platform = Platform([advice(action, delay_ms=1)])
    async with sdk(platform) as finops:
        with caplog.at_level("ERROR", logger="finops.client"), pytest.raises(LookupError):
            await finops.call(
                Provider(OVERLOADED), task_type="qa", provider="anthropic", model="claude",
                experiment=experiment, on_reported=on_reported,
            )  # fmt: skip
    assert [e["data"].get("experiment") for e in errors(platform.events)] == tags
    assert "could not" not in caplog.text


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
    assert "could not be queued as the call's give-up" in caplog.text
    assert "the client is closed" in caplog.text


class Room(asyncio.Event):
    """The queue's room for one more event, counting the puts that wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self.changed = asyncio.Event()

    async def wait(self) -> Any:
        self.waiting += 1
        self.changed.set()
        try:
            return await super().wait()
        finally:
            self.waiting -= 1

    async def until_waiting(self, count: int) -> None:
        while self.waiting < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)


async def test_calls_cancelled_while_the_buffer_is_full_report_within_a_reserve(
    monkeypatch, caplog
) -> None:
    # overflow="block": the calls' reports wait for room that ingest (stuck) never makes.
    # Cancelled, each reported without waiting (the cancellation takes effect at once),
    # past max_buffer without bound (an agent timing calls out while ingest is down grew
    # its buffer until memory ran out); an answered call's report was lost, with no log.
    monkeypatch.setattr(_queue, "ENDED_CALLS_RESERVE", 2)
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
    room = finops._queue._room = Room()
    calls = [
        asyncio.create_task(
            finops.call(fn, task_type="qa", provider="p", model=model, experiment=EXPERIMENT)
        )
        for model, fn in [
            ("failed", Provider(APIStatusError(503, {}))),
            ("answered", Provider()),
            ("failed too", Provider(APIStatusError(503, {}))),
        ]
    ]
    await room.until_waiting(3)  # the two errors and the answered call's llm_call
    for call in calls:
        call.cancel()
    with caplog.at_level("ERROR", logger="finops.client"):
        for call in calls:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(call, 5)
    reserve = list(finops._queue.buffer)[1:]
    assert [(e["type"], e["data"]["model"], e["data"]["experiment"]) for e in reserve] == [
        ("agent.error", "failed", TAG),
        ("agent.llm_call", "answered", TAG),
    ]
    assert (finops.pending, finops.stats.dropped) == (4, 1)
    assert "p/failed too ended after an error; it could not be queued" in caplog.text
    with pytest.raises(TimeoutError):  # ingest never answers: close() says what is lost
        await finops.close(timeout=0)


@pytest.mark.parametrize("experiment", [EXPERIMENT, None])
async def test_an_error_the_full_buffer_refuses_under_raise_is_told_once_not_dropped(
    experiment, caplog
) -> None:
    # overflow="raise", the buffer full: the call's error raises BufferFull to the agent, as
    # before. The call's end then tried it again as its give-up, counted it dropped and
    # logged it as a lost give-up, with no experiment too.
    stuck = asyncio.Event()

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            return httpx.Response(200, json=advice("wait", delay_ms=1))
        stuck.set()
        await asyncio.Event().wait()  # ingest never answers
        raise AssertionError

    finops = AsyncFinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform), batch_size=1, max_buffer=1, overflow="raise",
    )  # fmt: skip
    await finops.record_error(task_type="qa", provider="p", model="m", message="x")
    await asyncio.wait_for(stuck.wait(), 5)  # in flight, stuck
    await finops.record_error(task_type="qa", provider="p", model="m", message="x")  # full
    with caplog.at_level("ERROR", logger="finops.client"), pytest.raises(BufferFull):
        await finops.call(
            Provider(OVERLOADED), task_type="qa", provider="p", model="m", experiment=experiment
        )
    assert (finops.pending, finops.stats.dropped) == (2, 0)
    assert "could not be queued" not in caplog.text
    with pytest.raises(TimeoutError):
        await finops.close(timeout=0)


def blocking(platform: Any) -> FinOpsClient:
    return FinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform), max_backoff_s=0.01,
    )  # fmt: skip
