"""The broker gate's turns: one acknowledged produce request at a time reaches the local
broker, whichever connection it comes from; a consumer group's heartbeats, leaves and offset
commits go alone among its requests, for at most their group turn's wait; other requests
pass at once."""

from __future__ import annotations

import asyncio

from finops.cli.stack.gate_turns import GroupTurn, Turns


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


async def _settle() -> None:
    for _ in range(10):  # lets every ready task run; nothing here waits on a clock
        await asyncio.sleep(0)


def test_a_second_produce_waits_until_the_first_is_answered() -> None:
    async def scenario() -> list[str]:
        turns = Turns()
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
        turns = Turns()
        one = turns.connection()
        await one.before_request(produce(1, acks=0))  # no response will come: no turn
        unacknowledged_held = turns.lock.locked()
        await one.before_request(produce(2))
        one.release()  # the connection closed before the broker answered
        return unacknowledged_held, turns.lock.locked()

    assert asyncio.run(scenario()) == (False, False)


def group_request(correlation_id: int, group: str, api_key: int = 12) -> bytes:
    """A request frame (version 1, header v1) whose body starts with ``group``: a Heartbeat
    by default; what follows the group id is not read."""
    name = group.encode()
    body = (
        api_key.to_bytes(2, "big")
        + b"\x00\x01"
        + correlation_id.to_bytes(4, "big")
        + b"\x00\x01c"
        + len(name).to_bytes(2, "big")
        + name
        + b"\x00\x00\x00\x00\x00\x01m"
    )
    return len(body).to_bytes(4, "big") + body


def heartbeat(correlation_id: int, group: str) -> bytes:
    return group_request(correlation_id, group)


def join(correlation_id: int, group: str) -> bytes:
    return group_request(correlation_id, group, api_key=11)


def test_a_groups_heartbeat_waits_until_its_previous_request_is_answered() -> None:
    """tansu loses a member when a heartbeat of its group is handled with another request of
    the group (see the gate's docstring): it goes through alone; other groups' pass."""

    async def scenario() -> list[str]:
        turns = Turns()
        one, other = turns.connection(), turns.connection()
        order: list[str] = []
        await one.before_request(heartbeat(1, "owners"))
        order.append("one forwarded")

        async def second() -> None:
            await other.before_request(heartbeat(7, "owners"))
            order.append("other forwarded")

        waiting = asyncio.create_task(second())
        await other.before_request(heartbeat(8, "forward"))  # another group: passes at once
        order.append("other group forwarded")
        await other.before_request(produce(9))  # the produce turn is not a group's
        order.append("other produce forwarded")
        await _settle()
        order.append("one answered")
        one.after_response(response(1))
        await asyncio.wait_for(waiting, timeout=5)
        for correlation_id in (7, 8, 9):
            other.after_response(response(correlation_id))
        assert not turns.lock.locked()
        assert not any(turn.busy() for turn in turns.groups.values())
        return order

    assert asyncio.run(scenario()) == [
        "one forwarded",
        "other group forwarded",
        "other produce forwarded",
        "one answered",
        "other forwarded",
    ]


def test_joins_go_together_and_a_heartbeat_waits_for_them() -> None:
    """Joins are not held back by one another (so held, a rebalance stalled: see GroupTurn),
    but a heartbeat waits for them and a join for a heartbeat in the broker."""

    async def scenario() -> list[str]:
        turns = Turns()
        one, two, three = turns.connection(), turns.connection(), turns.connection()
        order: list[str] = []
        await one.before_request(join(1, "owners"))
        await two.before_request(join(2, "owners"))
        order.append("both joins forwarded")

        async def beat() -> None:
            await three.before_request(heartbeat(3, "owners"))
            order.append("heartbeat forwarded")

        async def rejoin() -> None:
            await one.before_request(join(4, "owners"))
            order.append("join behind the heartbeat forwarded")

        beating = asyncio.create_task(beat())
        await _settle()
        one.after_response(response(1))
        await _settle()
        order.append("one join answered")
        two.after_response(response(2))
        await asyncio.wait_for(beating, timeout=5)
        rejoining = asyncio.create_task(rejoin())
        await _settle()
        order.append("heartbeat answered")
        three.after_response(response(3))
        await asyncio.wait_for(rejoining, timeout=5)
        one.after_response(response(4))
        assert not any(turn.busy() for turn in turns.groups.values())
        return order

    assert asyncio.run(scenario()) == [
        "both joins forwarded",
        "one join answered",
        "heartbeat forwarded",
        "heartbeat answered",
        "join behind the heartbeat forwarded",
    ]


def test_a_closed_connection_gives_back_its_groups_turns() -> None:
    async def scenario() -> bool:
        turns = Turns()
        one = turns.connection()
        await one.before_request(join(1, "owners"))
        await one.before_request(heartbeat(2, "forward"))
        one.release()  # the connection closed before the broker answered
        return any(turn.busy() for turn in turns.groups.values())

    assert asyncio.run(scenario()) is False


def offset_fetch(correlation_id: int, group: str) -> bytes:
    return group_request(correlation_id, group, api_key=9)


def test_an_offset_fetch_passes_while_its_group_is_busy() -> None:
    """tansu reads committed offsets from its storage, not from the group's cached state."""

    async def scenario() -> bool:
        turns = Turns()
        one, other = turns.connection(), turns.connection()
        await one.before_request(heartbeat(1, "owners"))
        await asyncio.wait_for(other.before_request(offset_fetch(2, "owners")), timeout=5)
        return bool(other.holding)

    assert asyncio.run(scenario()) is False


def test_a_request_kept_waiting_past_the_turns_wait_goes_without_holding_it() -> None:
    """A join never answered (or joins arriving one after another) cannot keep a heartbeat
    from the broker past ``max_wait_s``; forwarded so, it gives back no turn it did not take."""

    async def scenario() -> tuple[bool, int, bool]:
        turns = Turns()
        turns.groups["owners"] = GroupTurn(max_wait_s=0.01)
        one, two = turns.connection(), turns.connection()
        await one.before_request(join(1, "owners"))  # never answered
        await asyncio.wait_for(two.before_request(heartbeat(2, "owners")), timeout=5)
        two.after_response(response(2))
        group = turns.groups["owners"]
        return bool(two.holding), group.gatherings, group.alone

    assert asyncio.run(scenario()) == (False, 1, False)


def test_a_correlation_id_reused_in_flight_takes_no_second_turn() -> None:
    """One answer gives back one turn: a second request under the same id goes without one,
    so the connection's close leaves the group free."""

    async def scenario() -> tuple[int, bool]:
        turns = Turns()
        one = turns.connection()
        await one.before_request(join(1, "owners"))
        await asyncio.wait_for(one.before_request(join(1, "owners")), timeout=5)
        group = turns.groups["owners"]
        gatherings = group.gatherings
        one.release()
        return gatherings, group.busy()

    assert asyncio.run(scenario()) == (1, False)


def test_an_idle_groups_turn_is_dropped_and_its_next_request_gets_a_fresh_one() -> None:
    """Group ids come from clients: a group's entry goes once no request of it waits or is
    in the broker, so they do not pile up; the group's turns work as before."""

    async def scenario() -> list[object]:
        turns = Turns()
        one, two = turns.connection(), turns.connection()
        seen: list[object] = []
        await one.before_request(join(1, "owners"))
        waiting = asyncio.create_task(two.before_request(heartbeat(2, "owners")))
        await _settle()
        one.after_response(response(1))  # the heartbeat, woken, has not looked again yet
        seen.append(sorted(turns.groups))
        await asyncio.wait_for(waiting, timeout=5)
        seen.append(turns.groups["owners"].alone)
        two.after_response(response(2))
        seen.append(sorted(turns.groups))  # idle: dropped
        await one.before_request(heartbeat(3, "owners"))  # a fresh turn, held at once
        fresh = turns.groups["owners"]
        late = asyncio.create_task(two.before_request(join(4, "owners")))
        await _settle()
        seen.append(late.done())  # the join waits for the heartbeat, as before
        one.after_response(response(3))
        await asyncio.wait_for(late, timeout=5)
        seen.append(turns.groups["owners"] is fresh)
        two.release()  # a closed connection gives its turn back: the group is idle again
        seen.append(sorted(turns.groups))
        await one.before_request(heartbeat(5, "owners"))
        await one.before_request(heartbeat(5, "reused"))  # an id in flight: takes no turn
        one.release()
        seen.append(sorted(turns.groups))
        return seen

    assert asyncio.run(scenario()) == [["owners"], True, [], False, True, [], []]


def test_a_request_that_waited_past_the_turns_wait_or_was_cancelled_leaves_no_entry() -> None:
    async def scenario() -> list[object]:
        turns = Turns()
        one, two = turns.connection(), turns.connection()
        await one.before_request(join(1, "owners"))
        turns.groups["owners"].max_wait_s = 0.01
        await asyncio.wait_for(two.before_request(heartbeat(2, "owners")), timeout=5)
        seen: list[object] = [turns.groups["owners"].users]  # the join only
        turns.groups["owners"].max_wait_s = 5.0
        waiting = asyncio.create_task(two.before_request(heartbeat(3, "owners")))
        await _settle()
        waiting.cancel()  # the connection's task ended while its request waited
        await asyncio.gather(waiting, return_exceptions=True)
        seen.append(turns.groups["owners"].users)
        one.after_response(response(1))
        seen.append(sorted(turns.groups))
        return seen

    assert asyncio.run(scenario()) == [1, 1, []]
