"""A record a Faust agent parks (faust_handle) is logged as one a consumer parks is: an
operator reading the logs sees every dead-lettered record, whichever reader parked it. A dead
letter the broker refuses for now is sent again; not one it refuses for good, nor while the
app stops: that record is then left unacknowledged (read again by the next run), and a refusal
for good crashes the app."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from finops.common import dead_letters
from finops.common.dead_letters import faust_handle


class FaustApp:
    """What faust_handle uses of a Faust app."""

    def __init__(self, producer: Any, *, should_stop: bool = False) -> None:
        self.producer = producer
        self.stopping = should_stop
        self.crash_reason: BaseException | None = None
        self.consumer = SimpleNamespace(unacked=set())

    @property
    def crashed(self) -> bool:
        return self.crash_reason is not None

    @property
    def should_stop(self) -> bool:
        return self.stopping or self.crashed

    async def crash(self, reason: BaseException) -> None:
        self.crash_reason = reason


class FaustProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    async def send_and_wait(self, *args: Any) -> None:
        self.sent.append(args)


async def test_a_record_a_faust_agent_parks_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    producer = FaustProducer()
    app = FaustApp(producer)
    message = SimpleNamespace(
        topic="agent.error.v1", partition=2, offset=41, key=b"agent-1", value=b"{", headers=()
    )
    event = SimpleNamespace(message=message, value=b"{")

    async def decode(value: bytes) -> None:
        raise ValueError("not an event")

    with caplog.at_level(logging.ERROR, logger="finops.common.dead_letters"):
        assert await faust_handle(app, event, decode, service="healer", max_attempts=1) is False
    assert [args[0] for args in producer.sent] == ["agent.error.v1.dlq"]
    [parked] = [r for r in caplog.records if r.getMessage() == "record dead-lettered"]
    assert (parked.topic, parked.partition, parked.offset) == ("agent.error.v1", 2, 41)  # type: ignore[attr-defined]
    assert parked.error == "ValueError: not an event"  # type: ignore[attr-defined]


class RefusingProducer:
    """Refuses the first sends with ``errors``, one each, then takes them."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.sent: list[tuple[Any, ...]] = []

    async def send_and_wait(self, *args: Any) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(args)


class Message:
    """A Faust message as faust_handle reads it (hashable, as Faust's is)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _poison() -> Any:
    message = Message(
        topic="agent.error.v1", partition=0, offset=7, key=b"a", value=b"{", headers=()
    )
    return SimpleNamespace(message=message, value=b"{")


async def _refused(value: bytes) -> None:
    raise ValueError("not an event")


async def test_a_dead_letter_refused_for_now_is_sent_again_until_taken(monkeypatch) -> None:
    monkeypatch.setattr(dead_letters, "FAUST_DLQ_RETRY_FIRST_S", 0.001)
    producer = RefusingProducer([KafkaConnectionError(), KafkaTimeoutError()])
    app = FaustApp(producer)
    async with asyncio.timeout(10):
        assert await faust_handle(app, _poison(), _refused, service="t", max_attempts=1) is False
    assert [args[0] for args in producer.sent] == ["agent.error.v1.dlq"]


async def test_a_dead_letter_the_broker_refuses_for_good_leaves_the_record_and_crashes() -> None:
    """An ACL that refuses the DLQ topic: the send is not tried again (it would wait for
    ever, and so would the app's stop), the record is marked so Faust's ack of it does
    nothing and no stop waits for it, and the app crashes."""
    producer = RefusingProducer([TopicAuthorizationFailedError()])
    app = FaustApp(producer)
    poison = _poison()
    app.consumer.unacked.add(poison.message)
    async with asyncio.timeout(10):
        with pytest.raises(TopicAuthorizationFailedError):
            await faust_handle(app, poison, _refused, service="t", max_attempts=1)
    assert producer.sent == []
    # never acked (so never committed: read again by the next run), nor waited for by a stop
    assert poison.message.acked is True and app.consumer.unacked == set()
    # the app crashed: /readyz fails and the service ends its process
    assert isinstance(app.crash_reason, TopicAuthorizationFailedError)


async def test_a_record_reaching_a_crashed_app_is_left_unacknowledged() -> None:
    """A record after the one left unparked, acked, would be committed past it."""
    producer = RefusingProducer([])
    app = FaustApp(producer)
    app.crash_reason = TopicAuthorizationFailedError()
    handled: list[bytes] = []

    async def handler(value: bytes) -> None:
        handled.append(value)

    later = _poison()
    with pytest.raises(RuntimeError, match="stream processor crashed"):
        await faust_handle(app, later, handler, service="t", max_attempts=1)
    assert handled == [] and later.message.acked is True


async def test_a_stopping_app_does_not_wait_for_a_dead_letter_the_broker_refuses() -> None:
    producer = RefusingProducer([KafkaConnectionError() for _ in range(100)])
    app = FaustApp(producer, should_stop=True)
    poison = _poison()
    async with asyncio.timeout(10):
        with pytest.raises(KafkaConnectionError):
            await faust_handle(app, poison, _refused, service="t", max_attempts=1)
    assert len(producer.errors) == 99  # tried once
    assert poison.message.acked is True  # read again by the next run
    assert app.crash_reason is None  # a stop, not a crash


async def test_a_record_whose_agent_is_cancelled_is_left_unacknowledged() -> None:
    """Cancelled (the app stopping) before its record was handled: Faust acked it all the
    same, and the stop committed it."""
    app = FaustApp(RefusingProducer([]))
    started = asyncio.Event()

    async def never_done(value: bytes) -> None:
        started.set()
        await asyncio.Event().wait()

    poison = _poison()
    task = asyncio.create_task(faust_handle(app, poison, never_done, service="t", max_attempts=1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert poison.message.acked is True and app.crash_reason is None
