"""The broker gate's turns (:mod:`finops.cli.stack.broker_gate` says why each is needed): one
acknowledged produce request at a time, from any client; a consumer group's heartbeats,
leaves and offset commits alone among its requests, for at most their turn's wait. A
connection's request waits for its turn before it is forwarded, and the turn passes on when
the response goes back to the client (or the connection ends).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from finops.cli.stack.kafka_frames import PRODUCE, RequestHeader, int32, parse_request

log = logging.getLogger("finops.broker_gate")

#: JoinGroup and SyncGroup: a group's requests that go to the broker together
GATHERINGS = frozenset({11, 14})
#: the group requests that take a turn: OffsetCommit, JoinGroup, Heartbeat, LeaveGroup,
#: SyncGroup (tansu takes the group's state out of its cache for each; OffsetFetch reads
#: only its storage)
GROUP_TURNS = frozenset({8, 11, 12, 13, 14})


class GroupTurn:
    """The requests of one consumer group in the broker: joins and syncs together, any other
    (heartbeat, leave, offset commit) alone; none waits longer than ``max_wait_s``.

    A join or a sync waits only while another kind of request is in the broker: held back one
    behind another, they stalled each rebalance of two workers for 13 to 31 s (why was not
    established: a follower's sync waits in the broker for the leader's, and a follower's join
    pauses there for 3 s in tansu's source). So joins and syncs of one group can still meet
    in the broker, and a rebalance stays exposed to the race (none was seen in the runs
    measured, docs/optimizer.md). A request that has waited ``max_wait_s`` (5 s: a heartbeat
    then still comes within the 10 s session timeout, however many joins kept it waiting, or
    however long a request before it goes unanswered) is forwarded without its turn, as
    every request was before the gate had turns for groups.
    """

    def __init__(self, max_wait_s: float = 5.0) -> None:
        self.max_wait_s = max_wait_s
        self.gatherings = 0  # joins and syncs in the broker
        self.alone = False  # another request of the group in the broker
        self._waiting: list[asyncio.Future[None]] = []
        #: requests waiting for the turn or holding it (a woken waiter counts until it has
        #: looked again); at 0 the turn is idle and ``on_idle`` is called
        self.users = 0
        self.on_idle: Callable[[], None] | None = None

    def busy(self) -> bool:
        return self.alone or self.gatherings > 0

    def _free_for(self, gathering: bool) -> bool:
        return not self.alone if gathering else not self.busy()

    async def enter(self, gathering: bool) -> bool:
        """Wait for the turn; False when ``max_wait_s`` passed first (the request goes
        without it, and holds nothing)."""
        self.users += 1
        taken = False
        try:
            taken = await self._take(gathering)
        finally:
            if not taken:  # timed out, or cancelled while waiting: holds nothing
                self._gone()
        return taken

    async def _take(self, gathering: bool) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while not self._free_for(gathering):
            waiter = loop.create_future()
            self._waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0.0))
            except TimeoutError:
                log.warning(
                    "a consumer group's request waited %.0f s for its turn; forwarded without it",
                    self.max_wait_s,
                )
                return False
        if gathering:
            self.gatherings += 1
        else:
            self.alone = True
        return True

    def leave(self, gathering: bool) -> None:
        if gathering:
            self.gatherings -= 1
        else:
            self.alone = False
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:  # each looks again at what is in the broker
            if not waiter.done():
                waiter.set_result(None)
        self._gone()

    def _gone(self) -> None:
        self.users -= 1
        self.drop_if_idle()

    def drop_if_idle(self) -> None:
        """Call ``on_idle`` if no request waits for the turn or holds it."""
        if self.users == 0 and self.on_idle is not None:
            self.on_idle()


class _ProduceTurn:
    """The produce requests' turn: one at a time."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    async def enter(self, gathering: bool) -> bool:
        await self.lock.acquire()
        return True

    def leave(self, gathering: bool) -> None:
        self.lock.release()


class Turns:
    """Lets one acknowledged produce request at a time through to the broker, and a consumer
    group's requests as :class:`GroupTurn` says (see the module's docstring); one instance is
    shared by every connection of a gate.

    Each connection holds a :class:`Connection`: such a request waits for its turn before it
    is forwarded, and the turn passes on when its response goes back to the client.
    """

    def __init__(self) -> None:
        #: the produce requests' turn
        self.lock = asyncio.Lock()
        self._produce = _ProduceTurn(self.lock)
        #: each consumer group's turn (by group id) while one of its requests waits for it
        #: or holds it: an idle group's entry is dropped (its next request starts a fresh
        #: one, as free as the idle one was), so group ids seen once do not pile up
        self.groups: dict[str, GroupTurn] = {}

    def connection(self) -> Connection:
        return Connection(self)

    def turn_of(self, header: RequestHeader | None) -> GroupTurn | _ProduceTurn | None:
        """The turn the request of ``header`` waits for; None: it passes at once."""
        if header is None:
            return None
        if header.api_key == PRODUCE:
            return None if header.acks == 0 else self._produce  # acks=0: no response comes
        if header.group is not None and header.api_key in GROUP_TURNS:
            return self._group_turn(header.group)
        return None

    def _group_turn(self, group: str) -> GroupTurn:
        turn = self.groups.get(group)
        if turn is None:
            turn = self.groups[group] = GroupTurn()
            turn.on_idle = partial(self._forget, group, turn)
        return turn

    def _forget(self, group: str, turn: GroupTurn) -> None:
        if self.groups.get(group) is turn:
            del self.groups[group]


class Connection:
    """One client connection's requests that hold a turn, awaiting their responses."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns
        #: the turn each of this connection's forwarded requests holds, by correlation id
        self.holding: dict[int, tuple[GroupTurn | _ProduceTurn, bool]] = {}

    async def before_request(self, frame: bytes) -> None:
        """Wait for the turn ``frame``'s request needs, if any."""
        header = parse_request(frame)
        turn = self.turns.turn_of(header)
        if turn is None or header is None:
            return
        if header.correlation_id in self.holding:
            # a client reusing an id still awaiting its answer: one answer could not give
            # back two turns, so this request goes without one
            log.warning("correlation id %d reused in flight", header.correlation_id)
            if isinstance(turn, GroupTurn):
                turn.drop_if_idle()  # a group's turn looked up for nothing
            return
        gathering = header.api_key in GATHERINGS
        if await turn.enter(gathering):
            self.holding[header.correlation_id] = (turn, gathering)

    def after_response(self, frame: bytes) -> None:
        """Pass the turn on when ``frame`` answers a request that holds one."""
        held = self.holding.pop(int32(frame, 4), None)
        if held is not None:
            turn, gathering = held
            turn.leave(gathering)

    def release(self) -> None:
        """Give back every turn held (the connection ended)."""
        held, self.holding = list(self.holding.values()), {}
        for turn, gathering in held:
            turn.leave(gathering)
