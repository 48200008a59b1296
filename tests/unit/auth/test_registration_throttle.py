"""Registration within limits: each client address has a budget per window, and this process
hashes a bounded number of registration passwords at once, so a script registering in a loop
(or many at once) cannot take the cores the logins need."""

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
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from finops.auth.adapters.redis_store import RedisRegistrationThrottle
from finops.auth.domain.errors import (
    AccountInvalid,
    RegistrationBusy,
    RegistrationThrottled,
    UsernameTaken,
)
from finops.auth.domain.rules import registration_throttle_key
from finops.auth.service_layer.auth_policy import AuthPolicy
from finops.auth.service_layer.auth_service import AuthService
from finops.common.auth import TokenSigner, generate_signing_key

PASSWORD = "violet tractor mirage 42"


class World:
    def __init__(self, **policy: float) -> None:
        signer = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
        store = FakeStore()
        self.registrations = FakeRegistrations()
        self.hashing = HeldHashing()
        self.service = AuthService(
            uow=lambda: FakeUnitOfWork(store),
            hashing=self.hashing,
            signer=lambda: signer,
            throttle=FakeThrottle(),
            registrations=self.registrations,
            revocations=FakeRevocations(),
            policy=AuthPolicy(**policy),  # type: ignore[arg-type]
        )
        self.names = 0

    async def register(self, address: str | None = "203.0.113.5", name: str | None = None):
        self.names += 1
        name = name or f"user{self.names}"
        return await self.service.register(
            name, f"{name}@example.com", PASSWORD, client_address=address
        )

    async def until(self, condition) -> None:
        """Let the event loop (and the hashing threads) run until ``condition()`` holds."""
        async with asyncio.timeout(10):  # a hang guard, not a synchronisation
            while not condition():
                await asyncio.sleep(0)


async def test_registrations_beyond_an_address_budget_are_429_and_cost_no_hash():
    world = World(max_registrations_per_address=2)
    await world.register()
    with pytest.raises(UsernameTaken):  # a refused one counts too: its hash was spent
        await world.register(name="user1")
    with pytest.raises(RegistrationThrottled) as throttled:
        await world.register()
    assert throttled.value.code == "too_many_registrations"
    assert throttled.value.retry_after_seconds == 60  # the window's end
    assert world.hashing.hashes == 2  # the refused registration hashed nothing
    assert (await world.register("203.0.113.6")).username  # another client, its own budget


async def test_the_addresses_of_one_ipv6_64_are_one_client():
    world = World(max_registrations_per_address=2)
    await world.register("2001:db8:7:1::1")
    await world.register("2001:db8:7:1:ffff:ffff:ffff:fffe")
    with pytest.raises(RegistrationThrottled):
        await world.register("2001:db8:7:1:abcd::42")
    assert (await world.register("2001:db8:7:2::1")).username  # the next /64
    assert registration_throttle_key("::ffff:192.0.2.1") == registration_throttle_key("192.0.2.1")


async def test_ipv4_clients_behind_a_nat64_gateway_each_have_their_own_budget():
    # 64:ff9b::/96 embeds the IPv4 client: its /64 made every client of the gateway one.
    world = World(max_registrations_per_address=1)
    await world.register("64:ff9b::c000:201")  # 192.0.2.1
    assert (await world.register("64:ff9b::c000:202")).username  # 192.0.2.2: its own budget
    with pytest.raises(RegistrationThrottled):
        await world.register("192.0.2.1")  # the same client, reached without NAT64
    assert registration_throttle_key("64:ff9b::198.51.100.4") == registration_throttle_key(
        "198.51.100.4"
    )


async def test_an_invalid_account_costs_neither_budget_nor_hash():
    world = World(max_registrations_per_address=1)
    with pytest.raises(AccountInvalid):
        await world.service.register(
            "Bad Name", "x@example.com", "password1234", client_address="203.0.113.5"
        )
    assert world.registrations.counts == {}
    assert world.hashing.hashes == 0
    assert (await world.register()).username


async def test_without_redis_a_registration_goes_on_uncounted():
    # Registration needs no Redis otherwise; the hash slots still bound what it costs.
    world = World(max_registrations_per_address=1)
    world.registrations.down = True
    await world.register()
    assert (await world.register()).username
    assert world.registrations.counts == {}


class RedisAnsweringWith:
    """A Redis client whose scripts are answered with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def register_script(self, script: str):
        async def run(keys=(), args=()):
            raise self.error

        return run


@pytest.mark.parametrize(
    "error",
    [
        ReadOnlyError("You can't write against a read only replica."),  # after a failover
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ResponseError("NOSCRIPT No matching script."),
    ],
)
async def test_a_registration_redis_answers_with_an_error_goes_on_uncounted(error):
    # Only a refused or timed-out connection was taken for Redis failing; an error answer
    # (READONLY after a failover, OOM) made every registration a 500.
    world = World(max_registrations_per_address=1)
    world.service._registrations = RedisRegistrationThrottle(RedisAnsweringWith(error), 60)
    assert (await world.register()).username
    assert (await world.register()).username


async def test_registrations_beyond_the_hash_slots_are_429_once_their_wait_is_over():
    # Before, every registration went straight to the thread pool the logins use too: a
    # hundred sent at once from a hundred addresses took every core.
    world = World(registration_hashes_in_flight=2, registration_hash_wait_seconds=0)
    world.hashing.hold.set()
    held = [asyncio.create_task(world.register(f"198.51.100.{n}")) for n in (1, 2)]
    await world.until(lambda: world.hashing.started == 2)
    with pytest.raises(RegistrationBusy) as busy:
        await world.register("198.51.100.3")
    assert (busy.value.code, busy.value.retry_after_seconds) == ("registration_busy", 1)
    assert world.hashing.started == 2  # the refused one never reached the hasher
    world.hashing.release.set()
    assert all(user.username for user in await asyncio.gather(*held))
    assert (await world.register("198.51.100.3")).username  # slots free again


async def test_a_registration_that_gets_no_hash_slot_costs_its_client_nothing():
    # It was counted before it waited for a slot: a 429 registration_busy (or a request
    # cancelled while it waited) used up the client's budget with no hash spent.
    world = World(
        max_registrations_per_address=5,
        registration_hashes_in_flight=1,
        registration_hash_wait_seconds=0,
    )
    world.hashing.hold.set()
    held = asyncio.create_task(world.register("198.51.100.1"))
    await world.until(lambda: world.hashing.started == 1)
    key = registration_throttle_key("198.51.100.2")
    for _ in range(3):
        with pytest.raises(RegistrationBusy):
            await world.register("198.51.100.2")
    assert world.registrations.counts[key] == 0
    world.hashing.release.set()
    await held
    assert world.registrations.counts[registration_throttle_key("198.51.100.1")] == 1


async def test_a_registration_cancelled_while_it_waits_for_a_slot_is_uncounted():
    world = World(registration_hashes_in_flight=1, registration_hash_wait_seconds=60)
    world.hashing.hold.set()
    held = asyncio.create_task(world.register("198.51.100.1"))
    await world.until(lambda: world.hashing.started == 1)
    key = registration_throttle_key("198.51.100.2")
    waiting = asyncio.create_task(world.register("198.51.100.2"))
    await world.until(lambda: world.registrations.counts.get(key) == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert world.registrations.counts[key] == 0
    assert world.hashing.started == 1
    world.hashing.release.set()
    await held


async def test_a_registration_waits_for_a_free_slot_and_goes_on():
    world = World(registration_hashes_in_flight=1, registration_hash_wait_seconds=60)
    world.hashing.hold.set()
    first = asyncio.create_task(world.register("198.51.100.1"))
    await world.until(lambda: world.hashing.started == 1)
    second = asyncio.create_task(world.register("198.51.100.2"))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not second.done()
    assert world.hashing.started == 1  # the second waits for the slot, not in the pool
    world.hashing.release.set()
    assert (await first).username and (await second).username


async def test_a_cancelled_registration_keeps_its_slot_until_its_hash_ends():
    # The thread keeps hashing after the request is gone: its slot is not free before it is.
    world = World(registration_hashes_in_flight=1, registration_hash_wait_seconds=0)
    world.hashing.hold.set()
    first = asyncio.create_task(world.register("198.51.100.1"))
    await world.until(lambda: world.hashing.started == 1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(RegistrationBusy):
        await world.register("198.51.100.2")
    world.hashing.release.set()
    await world.until(lambda: world.hashing.hashes == 1)
    world.hashing.hold.clear()
    await world.until(lambda: _slot_free(world))
    assert (await world.register("198.51.100.2")).username


def _slot_free(world: World) -> bool:
    return not world.service._hash_slots._free.locked()
