"""A record a Faust agent parks (faust_handle) is logged as one a consumer parks is: an
operator reading the logs sees every dead-lettered record, whichever reader parked it. A dead
letter the broker refuses for now is sent again; not one it refuses for good, nor while the
app stops."""

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


class FaustProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    async def send_and_wait(self, *args: Any) -> None:
        self.sent.append(args)


async def test_a_record_a_faust_agent_parks_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    producer = FaustProducer()
    app = SimpleNamespace(producer=producer)
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


def _poison() -> Any:
    message = SimpleNamespace(
        topic="agent.error.v1", partition=0, offset=7, key=b"a", value=b"{", headers=()
    )
    return SimpleNamespace(message=message, value=b"{")


async def _refused(value: bytes) -> None:
    raise ValueError("not an event")


async def test_a_dead_letter_refused_for_now_is_sent_again_until_taken(monkeypatch) -> None:
    monkeypatch.setattr(dead_letters, "FAUST_DLQ_RETRY_FIRST_S", 0.001)
    producer = RefusingProducer([KafkaConnectionError(), KafkaTimeoutError()])
    app = SimpleNamespace(producer=producer, should_stop=False)
    async with asyncio.timeout(10):
        assert await faust_handle(app, _poison(), _refused, service="t", max_attempts=1) is False
    assert [args[0] for args in producer.sent] == ["agent.error.v1.dlq"]


async def test_a_dead_letter_the_broker_refuses_for_good_is_not_sent_for_ever() -> None:
    """An ACL that refuses the DLQ topic: sent again for ever, the agent waited for ever
    (and so did the app's stop, which waits for the record's ack)."""
    producer = RefusingProducer([TopicAuthorizationFailedError()])
    app = SimpleNamespace(producer=producer, should_stop=False)
    async with asyncio.timeout(10):
        with pytest.raises(TopicAuthorizationFailedError):
            await faust_handle(app, _poison(), _refused, service="t", max_attempts=1)
    assert producer.sent == []


async def test_a_stopping_app_does_not_wait_for_a_dead_letter_the_broker_refuses() -> None:
    producer = RefusingProducer([KafkaConnectionError() for _ in range(100)])
    app = SimpleNamespace(producer=producer, should_stop=True)
    async with asyncio.timeout(10):
        with pytest.raises(KafkaConnectionError):
            await faust_handle(app, _poison(), _refused, service="t", max_attempts=1)
    assert len(producer.errors) == 99  # tried once
