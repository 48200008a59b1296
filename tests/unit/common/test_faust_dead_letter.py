"""A record a Faust agent parks (faust_handle) is logged as one a consumer parks is: an
operator reading the logs sees every dead-lettered record, whichever reader parked it."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from finops.common.consumer import faust_handle


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

    with caplog.at_level(logging.ERROR, logger="finops.common.consumer"):
        assert await faust_handle(app, event, decode, service="healer", max_attempts=1) is False
    assert [args[0] for args in producer.sent] == ["agent.error.v1.dlq"]
    [parked] = [r for r in caplog.records if r.getMessage() == "record dead-lettered"]
    assert (parked.topic, parked.partition, parked.offset) == ("agent.error.v1", 2, 41)  # type: ignore[attr-defined]
    assert parked.error == "ValueError: not an event"  # type: ignore[attr-defined]
