"""The broker gate's produce turns: one acknowledged produce request at a time reaches the
local broker, whichever connection it comes from; other requests pass at once."""

from __future__ import annotations

import asyncio
import doctest

from finops.cli import kafka_frames
from finops.cli.broker_gate import ProduceTurns


def produce(correlation_id: int, acks: int = -1) -> bytes:
    """A Produce v7 request frame (no transactional id)."""
    body = (
        b"\x00\x00\x00\x07"
        + correlation_id.to_bytes(4, "big")
        + b"\x00\x01c\xff\xff"
        + acks.to_bytes(2, "big", signed=True)
        + b"\x00\x00\x75\x30"
    )
    return len(body).to_bytes(4, "big") + body


def fetch(correlation_id: int) -> bytes:
    body = b"\x00\x01\x00\x0b" + correlation_id.to_bytes(4, "big") + b"\xff\xff"
    return len(body).to_bytes(4, "big") + body


def response(correlation_id: int) -> bytes:
    body = correlation_id.to_bytes(4, "big") + b"\x00\x00"
    return len(body).to_bytes(4, "big") + body


def test_the_frame_parser_doctests_pass() -> None:
    result = doctest.testmod(kafka_frames)
    assert result.attempted >= 4
    assert result.failed == 0


async def _settle() -> None:
    for _ in range(10):  # lets every ready task run; nothing here waits on a clock
        await asyncio.sleep(0)


def test_a_second_produce_waits_until_the_first_is_answered() -> None:
    async def scenario() -> list[str]:
        turns = ProduceTurns()
        one, other = turns.connection(), turns.connection()
        order: list[str] = []
        await one.before_request(produce(1))
        order.append("one forwarded")

        async def second() -> None:
            await other.before_request(produce(7))
            order.append("other forwarded")

        waiting = asyncio.create_task(second())
        await other.before_request(fetch(8))  # not a produce: passes while the turn is held
        order.append("other fetch forwarded")
        await _settle()
        one.after_response(response(99))  # not the produce's answer: the turn stays
        await _settle()
        order.append("one answered")
        one.after_response(response(1))
        await asyncio.wait_for(waiting, timeout=5)
        other.after_response(response(7))
        assert not turns.lock.locked()
        return order

    assert asyncio.run(scenario()) == [
        "one forwarded",
        "other fetch forwarded",
        "one answered",
        "other forwarded",
    ]


def test_an_unacknowledged_produce_takes_no_turn_and_a_closed_connection_gives_its_back() -> None:
    async def scenario() -> tuple[bool, bool]:
        turns = ProduceTurns()
        one = turns.connection()
        await one.before_request(produce(1, acks=0))  # no response will come: no turn
        unacknowledged_held = turns.lock.locked()
        await one.before_request(produce(2))
        one.release()  # the connection closed before the broker answered
        return unacknowledged_held, turns.lock.locked()

    assert asyncio.run(scenario()) == (False, False)
