"""An outcome whose time is not one (JSON's Infinity and NaN, before 1970, beyond year 9999)
is parked on the dead-letter topic, not counted: the window's ``int(at)`` raised
OverflowError on Infinity, outside what the owner parks, so the process exited and restarted
on the same record for ever."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from test_breaker_shards_publish_first import TOPIC, Log, breaker_shards

from finops.healer.adapters.circuits import LATEST_AT, ProviderOutcome

GOOD = ProviderOutcome(str(uuid.UUID(int=1)), "openai", "gpt-4o", True, 1000.0, "server_error")


def at(value: Any) -> bytes:
    """``GOOD`` with ``"at": value``, as JSON writes it (``Infinity``, ``NaN``)."""
    return json.dumps({**json.loads(GOOD.to_json()), "at": value}).encode()


BAD_TIMES = [float("inf"), float("-inf"), float("nan"), 1e18, LATEST_AT + 1, -1.0]


@pytest.mark.parametrize("value", BAD_TIMES)
def test_an_outcome_time_that_is_not_one_is_refused(value):
    with pytest.raises(ValueError, match="seconds since 1970 up to year 9999"):
        ProviderOutcome.from_json(at(value))


@pytest.mark.parametrize("value", [0, 1_765_000_000.5, LATEST_AT, "1000.0"])
def test_any_time_an_event_can_carry_is_taken(value):
    assert ProviderOutcome.from_json(at(value)).at == float(value)


class ParkingLog(Log):
    """The broker, which also takes the owner's dead letters."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: list[tuple[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        self.parked.append((topic, value))


async def test_an_outcome_of_an_infinite_time_is_parked_and_the_next_one_counted():
    log = ParkingLog()
    values = [at(float("inf")), at(1e18), GOOD.to_json()]
    consumer, shards = breaker_shards(log)
    consumer.value = lambda partition, offset: values[offset]
    await shards.adopt({0})
    shard = shards.shards[0]
    records = [consumer.record(0, offset) for offset in range(3)]
    await shards.handle(0, shard, records)  # raised OverflowError before
    assert log.parked == [(f"{TOPIC}.dlq", values[0]), (f"{TOPIC}.dlq", values[1])]
    assert b"Infinity" in values[0]
    assert shard.applied == 1  # the good outcome after them
    (breaker,) = shard.board.breakers.values()
    assert (breaker.window.calls, breaker.window.failures) == (1, 1)
