"""Logins judged within the throttle's limits while others are in flight: one held back only by
attempts in flight waits for them, asking again after a growing wait (then 429 once it has
waited its while), one whose lease lapsed
while it was judged is refused as throttled, and a start whose answer was lost gives its
lease back."""

from __future__ import annotations

import asyncio

import pytest
from auth_fakes import (
    FakeRegistrations,
    FakeRevocations,
    FakeStore,
    FakeThrottle,
    FakeUnitOfWork,
    HeldHashing,
)

from finops.auth.domain.errors import LoginThrottled
from finops.auth.domain.rules import AttemptVerdict
from finops.auth.service_layer.auth_policy import AuthPolicy
from finops.auth.service_layer.auth_service import AuthService
from finops.common.auth import TokenSigner, generate_signing_key

PASSWORD = "violet tractor mirage 42"


class CountingThrottle(FakeThrottle):
    def __init__(self) -> None:
        super().__init__()
        self.begins = 0
        self.lose_answer = False

    async def begin_attempt(self, keys: dict[str, int], attempt_id: str) -> AttemptVerdict:
        self.begins += 1
        verdict = await super().begin_attempt(keys, attempt_id)
        if self.lose_answer:
            raise ConnectionError("the answer was lost after the script ran")
        return verdict


class Waits:
    """The service's sleep: records each wait and only lets the other tasks run."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def service(
    throttle: FakeThrottle, hashing: HeldHashing, wait_seconds: float, waits: Waits | None = None
) -> AuthService:
    signer = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
    store = FakeStore()
    return AuthService(
        uow=lambda: FakeUnitOfWork(store),
        hashing=hashing,
        signer=lambda: signer,
        throttle=throttle,
        registrations=FakeRegistrations(),
        revocations=FakeRevocations(),
        policy=AuthPolicy(max_failures_per_account=1, busy_wait_seconds=wait_seconds),
        sleep=waits or Waits(),
    )


@pytest.fixture
def hashing() -> HeldHashing:
    return HeldHashing()


@pytest.fixture
def throttle() -> CountingThrottle:
    return CountingThrottle()


async def held_login(auth: AuthService, hashing: HeldHashing) -> asyncio.Task:
    """A login of "alice" held inside its password check (its lease taken)."""
    hashing.hold.set()
    first = asyncio.create_task(auth.login("alice", PASSWORD, client_address="a"))
    while not hashing.holding.is_set():
        await asyncio.sleep(0)
    hashing.hold.clear()
    return first


async def test_a_login_held_back_by_one_in_flight_waits_for_it_and_logs_in(throttle, hashing):
    auth = service(throttle, hashing, wait_seconds=10**7)  # until the first ends
    await auth.register("alice", "alice@example.com", PASSWORD)
    first = await held_login(auth, hashing)
    second = asyncio.create_task(auth.login("alice", PASSWORD, client_address="a"))
    while throttle.begins < 3:  # the second has been refused as busy at least once
        await asyncio.sleep(0)
    hashing.release.set()
    pairs = await asyncio.gather(first, second)
    assert all(pair.access_token for pair in pairs)
    assert throttle.in_flight == {key: set() for key in throttle.in_flight}


async def test_a_login_still_held_back_after_its_wait_is_throttled_for_a_second(throttle, hashing):
    waits = Waits()
    auth = service(throttle, hashing, wait_seconds=5.0, waits=waits)
    await auth.register("alice", "alice@example.com", PASSWORD)
    first = await held_login(auth, hashing)
    with pytest.raises(LoginThrottled) as throttled:
        await auth.login("alice", PASSWORD, client_address="a")
    assert throttled.value.retry_after_seconds == 1
    # the held login's, then the first try and one after each wait
    assert throttle.begins == 1 + 1 + len(waits.waits)
    hashing.release.set()
    assert (await first).access_token


async def test_a_login_held_back_asks_again_after_a_growing_wait_for_the_same_total(
    throttle, hashing
):
    # It asked Redis every 50 ms, a hundred times in 5 s, however long the others took.
    waits = Waits()
    policy = AuthPolicy()
    auth = service(throttle, hashing, wait_seconds=policy.busy_wait_seconds, waits=waits)
    await auth.register("alice", "alice@example.com", PASSWORD)
    first = await held_login(auth, hashing)
    with pytest.raises(LoginThrottled):
        await auth.login("alice", PASSWORD, client_address="a")
    hashing.release.set()
    await first
    assert sum(waits.waits) == pytest.approx(5.0)  # the same wait in all as before
    assert len(waits.waits) <= 40  # asked Redis 41 times at most, not 101
    first_wait, longest = policy.busy_first_wait_seconds, policy.busy_longest_wait_seconds
    assert first_wait <= waits.waits[0] <= 2 * first_wait
    assert waits.waits[2] >= 2 * waits.waits[0]  # it grows, up to the longest
    assert max(waits.waits) == pytest.approx(longest)
    assert all(wait <= longest for wait in waits.waits)


class WaitsUntilReleased(Waits):
    """Waits during which, once ``release_at`` seconds have been waited, the held login's
    check ends (and its attempt with it)."""

    def __init__(self, hashing: HeldHashing, release_at: float) -> None:
        super().__init__()
        self.hashing, self.release_at = hashing, release_at
        self.held: asyncio.Task | None = None

    async def __call__(self, seconds: float) -> None:
        before = sum(self.waits)
        await super().__call__(seconds)
        if self.held is not None and before < self.release_at <= before + seconds:
            self.hashing.release.set()
            await self.held


async def test_a_login_held_back_is_let_in_soon_after_the_attempts_in_flight_end(throttle, hashing):
    # With waits growing to 0.5 s, one whose blocker ended at 0.4 s asked again at 0.62 s or
    # later: the longest wait is how late a login held back may be let in.
    waits = WaitsUntilReleased(hashing, release_at=0.4)
    auth = service(throttle, hashing, wait_seconds=5.0, waits=waits)
    await auth.register("alice", "alice@example.com", PASSWORD)
    waits.held = await held_login(auth, hashing)
    pair = await auth.login("alice", PASSWORD, client_address="a")
    assert pair.access_token
    let_in_at = sum(waits.waits)
    assert 0.4 <= let_in_at <= 0.4 + 0.15


async def test_a_login_whose_lease_lapsed_while_judged_is_throttled_and_its_failure_counted(
    throttle, hashing
):
    auth = service(throttle, hashing, wait_seconds=1.0)
    await auth.register("alice", "alice@example.com", PASSWORD)
    hashing.during = throttle.lapse  # a queue of checks longer than the lease
    with pytest.raises(LoginThrottled) as throttled:
        await auth.login("alice", "not the password", client_address="a")
    assert throttled.value.retry_after_seconds == 1  # the answer tells nothing of the guess
    assert sorted(throttle.failures.values()) == [1, 1]  # the account's and the address's
    await auth.register("bob", "bob@example.com", PASSWORD)
    with pytest.raises(LoginThrottled) as throttled:  # the right password, lapsed too
        await auth.login("bob", PASSWORD, client_address="b")
    assert throttled.value.retry_after_seconds == 1


async def test_a_start_whose_answer_was_lost_gives_its_lease_back(throttle, hashing):
    auth = service(throttle, hashing, wait_seconds=1.0)
    await auth.register("alice", "alice@example.com", PASSWORD)
    throttle.lose_answer = True
    with pytest.raises(ConnectionError):
        await auth.login("alice", PASSWORD, client_address="a")
    assert throttle.in_flight and all(not leases for leases in throttle.in_flight.values())
    assert throttle.failures == {}
