"""The login throttle's leases (the attempts in flight) are timed by the Redis server's clock,
not by each auth replica's: two replicas whose clocks differ by more than the lease time
judged each other's leases wrongly. One running ahead dropped the others' leases as lapsed
and let a guess past the limit; one running behind wrote leases the others dropped at once;
and a lease leaked by one running ahead outlived the lease time by its lead."""

from __future__ import annotations

import contextlib
import importlib.util
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from unittest import mock

import pytest
from redis.asyncio import Redis

import finops.auth.adapters.redis_store as redis_store
from finops.auth.adapters.redis_store import (
    ATTEMPT_LEASE_SECONDS,
    LOGIN_LEASES_PREFIX,
    RedisLoginThrottle,
)
from finops.auth.domain.rules import AttemptVerdict

pytestmark = pytest.mark.integration

#: how far the other replica's clock is off ours: more than a lease time
SKEW_SECONDS = ATTEMPT_LEASE_SECONDS + 10
REFUSED = AttemptVerdict(admitted=False)


@pytest.fixture
async def redis(infra):
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@contextlib.contextmanager
def clock_off_by(seconds: float) -> Iterator[None]:
    """The local clock (``time.time``) reads ``seconds`` off the real one."""
    real = time.time
    with mock.patch("time.time", lambda: real() + seconds):
        yield


def replica_adapters(clock_seconds_off: float) -> ModuleType:
    """The Redis adapters of another auth replica, whose clock reads ``clock_seconds_off``
    off ours: the module loaded afresh while the local clock is off, so that a clock it
    takes from ``time`` when loaded (a default argument) is off too."""
    spec = importlib.util.find_spec(redis_store.__name__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with clock_off_by(clock_seconds_off):
        spec.loader.exec_module(module)
    return module


class SkewedReplica:
    """The login throttle of a replica whose clock is off ours, its calls made while the
    local clock reads off too."""

    def __init__(self, redis: Redis, clock_seconds_off: float) -> None:
        adapters = replica_adapters(clock_seconds_off)
        self.throttle = adapters.RedisLoginThrottle(redis, window_seconds=900)
        self.off = clock_seconds_off

    async def begin_attempt(self, keys: dict[str, int], attempt_id: str) -> AttemptVerdict:
        with clock_off_by(self.off):
            verdict: AttemptVerdict = await self.throttle.begin_attempt(keys, attempt_id)
        return verdict


@pytest.mark.parametrize(
    ("off", "skewed_first"),
    [
        # ahead: it read our lease, begun a moment ago, as begun 40 s ago, lapsed
        (SKEW_SECONDS, False),
        # behind: its lease read as begun 40 s ago to us, lapsed at once
        (-SKEW_SECONDS, True),
    ],
)
async def test_replicas_whose_clocks_differ_hold_one_budget_of_attempts_in_flight(
    redis, off, skewed_first
):
    ours = RedisLoginThrottle(redis, window_seconds=900)
    skewed = SkewedReplica(redis, off)
    first, second = (skewed, ours) if skewed_first else (ours, skewed)
    key = f"account:{uuid.uuid4()}"
    keys = {key: 1}  # one attempt in flight at most

    assert (await first.begin_attempt(keys, "first")).admitted
    # the first is still being judged: the second waits (a busy verdict), whichever replica
    # asks; before, it went on (two guesses in flight against a limit of one)
    assert await second.begin_attempt(keys, "second") == REFUSED
    assert await redis.zrange(LOGIN_LEASES_PREFIX + key, 0, -1) == [b"first"]


async def test_a_lease_leaked_by_a_replica_running_ahead_lapses_after_the_lease_time(redis):
    # A replica whose clock runs 40 s ahead began an attempt and died. Its lease must lapse a
    # lease time after it began, not a lease time plus its lead.
    ours = RedisLoginThrottle(redis, window_seconds=900)
    skewed = SkewedReplica(redis, SKEW_SECONDS)
    key = f"account:{uuid.uuid4()}"
    keys = {key: 1}
    assert (await skewed.begin_attempt(keys, "died")).admitted
    assert await ours.begin_attempt(keys, "next") == REFUSED  # "died" is in flight
    # "died" began a lease time and a second ago
    await redis.zincrby(LOGIN_LEASES_PREFIX + key, -(ATTEMPT_LEASE_SECONDS + 1) * 1000, "died")
    assert (await ours.begin_attempt(keys, "next")).admitted
    assert await redis.zrange(LOGIN_LEASES_PREFIX + key, 0, -1) == [b"next"]
