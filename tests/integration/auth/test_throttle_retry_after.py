"""The Redis counters of logins and registrations: the Retry-After of a throttled one (the
seconds until the window ends, rounded up and at least 1, so a client that waits it is not
refused again), and a registration given back."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from finops.auth.adapters.redis_store import (
    LOGIN_FAILURES_PREFIX,
    REGISTRATIONS_PREFIX,
    RedisLoginThrottle,
    RedisRegistrationThrottle,
)

pytestmark = pytest.mark.integration

# milliseconds left in the window -> the Retry-After expected. Redis' TTL rounds to the
# nearest second: 1.4 s left said 1 (the client came back early and was refused again), and
# 0.4 s left said 0, read as "no window" and answered with the whole window.
LEFT_TO_RETRY_AFTER = [(1400, 2), (400, 1), (2000, 2), (59_999, 60)]


@pytest.fixture
async def redis(infra):
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize(("left_ms", "retry_after"), LEFT_TO_RETRY_AFTER)
async def test_a_throttled_registration_waits_until_the_window_ends_rounded_up(
    redis, left_ms, retry_after
):
    throttle = RedisRegistrationThrottle(redis, window_seconds=60)
    key = f"address:{uuid.uuid4()}"
    await redis.set(REGISTRATIONS_PREFIX + key, 3, px=left_ms)
    assert await throttle.admit(key, 3) == retry_after


@pytest.mark.parametrize(("left_ms", "retry_after"), LEFT_TO_RETRY_AFTER)
async def test_a_throttled_login_waits_until_the_window_ends_rounded_up(
    redis, left_ms, retry_after
):
    throttle = RedisLoginThrottle(redis, window_seconds=900)
    key = f"account:{uuid.uuid4()}"
    await redis.set(LOGIN_FAILURES_PREFIX + key, 5, px=left_ms)
    verdict = await throttle.begin_attempt({key: 5}, f"attempt-{uuid.uuid4()}")
    assert not verdict.admitted
    assert verdict.retry_after_seconds == retry_after


async def test_a_counter_with_no_window_gets_one_and_says_so(redis):
    registrations = RedisRegistrationThrottle(redis, window_seconds=60)
    logins = RedisLoginThrottle(redis, window_seconds=900)
    key = f"address:{uuid.uuid4()}"
    await redis.set(REGISTRATIONS_PREFIX + key, 3)
    await redis.set(LOGIN_FAILURES_PREFIX + key, 5)
    assert await registrations.admit(key, 3) == 60
    assert (await logins.begin_attempt({key: 5}, "a")).retry_after_seconds == 900
    assert 0 < await redis.ttl(REGISTRATIONS_PREFIX + key) <= 60
    assert 0 < await redis.ttl(LOGIN_FAILURES_PREFIX + key) <= 900


async def test_a_registration_given_back_is_uncounted_in_the_same_window(redis):
    throttle = RedisRegistrationThrottle(redis, window_seconds=60)
    key = f"address:{uuid.uuid4()}"
    assert await throttle.admit(key, 2) == 0
    assert await throttle.admit(key, 2) == 0
    await throttle.give_back(key)
    assert await redis.get(REGISTRATIONS_PREFIX + key) == b"1"
    assert 0 < await redis.pttl(REGISTRATIONS_PREFIX + key) <= 60_000  # its window kept
    assert await throttle.admit(key, 2) == 0  # the budget has room again
    assert await throttle.admit(key, 2) > 0
    gone = f"address:{uuid.uuid4()}"
    await throttle.give_back(gone)  # a window that ended: nothing to give back
    assert await redis.exists(REGISTRATIONS_PREFIX + gone) == 0
