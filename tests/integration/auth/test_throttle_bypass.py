"""Login and registration throttling that cannot be sidestepped: by another spelling of the
same account, or by a forged X-Forwarded-For header (only configured proxies are believed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from auth_helpers import PASSWORD, Accounts, asgi_client, unique_name
from fault_injection import FaultyLink
from redis.asyncio import Redis
from support import wait_until

from finops.auth.adapters.redis_store import (
    ATTEMPT_LEASE_SECONDS,
    LOGIN_FAILURES_PREFIX,
    LOGIN_LEASES_PREFIX,
    REGISTRATIONS_PREFIX,
    RedisLoginThrottle,
)
from finops.auth.app import create_app
from finops.auth.domain.rules import AttemptVerdict, registration_throttle_key
from finops.cli.stack.ports import free_port
from finops.common.auth import blocklist_redis
from finops.common.runner import uvicorn_options

pytestmark = pytest.mark.integration

WRONG = "wrong password 123"


async def login(client, name: str, password: str, **kwargs):
    return await client.post(
        "/api/auth/login", json={"login": name, "password": password}, **kwargs
    )


async def register_ending_in_i(client) -> tuple[str, str]:
    """(username, email) of a new account whose username ends in "i"."""
    username = unique_name() + "i"
    email = f"{username}@example.com"
    body = {"username": username, "email": email, "password": PASSWORD}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    return username, email


def dotted(name: str) -> str:
    """ "…i" spelled "…İ": PostgreSQL's lower() gives back "…i", Python's casefold "…i̇"."""
    return name[:-1] + "\u0130"


async def test_another_spelling_of_a_locked_account_is_locked_too(client):
    username, email = await register_ending_in_i(client)
    assert (await login(client, dotted(username), WRONG)).status_code == 401
    for _ in range(4):
        assert (await login(client, username, WRONG)).status_code == 401

    for spelling in (dotted(username), username, email.upper()):
        blocked = await login(client, spelling, PASSWORD)
        assert blocked.status_code == 429, (spelling, blocked.text)
        assert blocked.json()["error"]["code"] == "too_many_attempts"


@pytest.fixture(scope="module")
async def burst(make_auth_settings) -> AsyncIterator[tuple[httpx.AsyncClient, Accounts]]:
    """A client and accounts of an auth service that waits as long as a burst needs for its
    PostgreSQL and Redis: with the 1 s bounds of the defaults, a burst of 40 logins on a
    loaded 2-core CI machine had 13 of them answer 503 dependency_unavailable (their wait for
    one of the pool's 10 connections ran out) before the throttle judged them. The bound's
    own 503s are tested in test_auth_dependency_faults.py; these tests are about the throttle."""
    patience = {
        "postgres_acquire_timeout_s": 60.0,
        "postgres_command_timeout_s": 60.0,
        "redis_timeout_s": 60.0,
    }
    app = create_app(make_auth_settings(**patience))
    async with LifespanManager(app, startup_timeout=60), asgi_client(app) as http:
        yield http, Accounts(app, http)


async def test_concurrent_guesses_get_no_more_tries_than_the_limit(burst):
    # Each login read the counter, then spent an argon2 verification, then counted its
    # failure: 40 guesses sent at once were all judged (401) against a limit of 5.
    client, accounts = burst
    user = await accounts.register()
    guesses = await asyncio.gather(
        *(login(client, user.username, f"{WRONG} {n}") for n in range(40))
    )
    codes = sorted(response.status_code for response in guesses)
    assert codes == [401] * 5 + [429] * 35
    assert (await login(client, user.username, PASSWORD)).status_code == 429


async def test_concurrent_right_passwords_all_log_in_and_use_up_no_budget(burst):
    # Attempts in flight count against the limit until judged; one held back only by others
    # in flight waits for them instead of being refused, and one that succeeds leaves no
    # count behind.
    client, accounts = burst
    user = await accounts.register()
    logins = await asyncio.gather(*(login(client, user.username, PASSWORD) for _ in range(12)))
    assert [r.status_code for r in logins] == [200] * 12
    for _ in range(4):
        assert (await login(client, user.username, WRONG)).status_code == 401
    assert (await login(client, user.username, PASSWORD)).status_code == 200


async def test_an_attempt_that_never_ended_stops_counting_despite_steady_traffic(infra):
    # A process that died between an attempt's start and end leaves its lease; it lapses
    # after ATTEMPT_LEASE_SECONDS even while other attempts keep coming (a counter whose
    # expiry each attempt re-armed kept it for as long as traffic did).
    redis = Redis.from_url(infra.redis_url)
    try:
        throttle = RedisLoginThrottle(redis, window_seconds=900)
        keys = {f"account:{uuid.uuid4()}": 2}
        assert (await throttle.begin_attempt(keys, "died")).admitted
        for n in range(3):  # steady traffic, each attempt ended, within the lease time
            live = f"live-{uuid.uuid4()}-{n}"  # each attempt has its own id
            assert (await throttle.begin_attempt(keys, live)).admitted
            await throttle.end_attempt(list(keys), live, failed=False)
        assert (await throttle.begin_attempt(keys, "a")).admitted  # "died" and "a": 2 of 2
        assert await throttle.begin_attempt(keys, "b") == AttemptVerdict(admitted=False)
        await began_earlier(redis, next(iter(keys)), "died", ATTEMPT_LEASE_SECONDS + 1)
        assert (await throttle.begin_attempt(keys, "b")).admitted
        assert (await throttle.begin_attempt(keys, "b")).admitted  # a retried call
        assert await redis.zcard(LOGIN_LEASES_PREFIX + next(iter(keys))) == 2  # "a", "b"
    finally:
        await redis.aclose()


async def began_earlier(redis: Redis, key: str, attempt_id: str, seconds: float) -> None:
    """Move the start of ``attempt_id``'s lease on ``key`` ``seconds`` back: leases are timed
    by the Redis server's clock, which a test cannot move."""
    await redis.zincrby(LOGIN_LEASES_PREFIX + key, -seconds * 1000, attempt_id)


async def test_an_attempt_whose_end_is_sent_again_after_a_dropped_link_counts_once(infra):
    # The Redis client sends a command again on a new connection when the link drops before
    # the answer comes (finops.common.auth.blocklist_redis): the end of an attempt then ran
    # twice, counting one wrong password as two failures, and the second run, finding the
    # lease given back, answered "lapsed" (429 whatever the password).
    link = await FaultyLink(infra.redis_url).start()
    redis = blocklist_redis(link.url)
    try:
        throttle = RedisLoginThrottle(redis, window_seconds=900)
        account, address = f"account:{uuid.uuid4()}", f"address:{uuid.uuid4()}"
        keys = {account: 5, address: 50}
        await throttle.end_attempt(list(keys), f"warm-{uuid.uuid4()}", failed=False)  # loaded
        guess = f"guess-{uuid.uuid4()}"
        assert (await throttle.begin_attempt(keys, guess)).admitted
        link.drop_next_answer()
        assert await throttle.end_attempt(list(keys), guess, failed=True)  # held, judged once
        counts = await redis.mget([LOGIN_FAILURES_PREFIX + k for k in keys])
        assert counts == [b"1", b"1"]
    finally:
        await redis.aclose()
        await link.close()


async def test_an_attempt_ended_twice_answers_the_same_and_counts_once(infra):
    redis = Redis.from_url(infra.redis_url)
    try:
        throttle = RedisLoginThrottle(redis, window_seconds=900)
        keys = {f"account:{uuid.uuid4()}": 5}
        late = f"late-{uuid.uuid4()}"
        assert (await throttle.begin_attempt(keys, late)).admitted
        # its lease lapses while it is judged
        await began_earlier(redis, next(iter(keys)), late, ATTEMPT_LEASE_SECONDS + 1)
        assert (await throttle.begin_attempt(keys, f"next-{uuid.uuid4()}")).admitted
        assert not await throttle.end_attempt(list(keys), late, failed=True)
        assert not await throttle.end_attempt(list(keys), late, failed=True)  # sent again
        assert await redis.get(LOGIN_FAILURES_PREFIX + next(iter(keys))) == b"1"
    finally:
        await redis.aclose()


async def test_failures_under_different_spellings_add_up(client):
    username, email = await register_ending_in_i(client)
    local, domain = email.split("@")
    for spelling in (username, dotted(username), email, email.upper(), f"{dotted(local)}@{domain}"):
        assert (await login(client, spelling, WRONG)).status_code == 401
    assert (await login(client, username, PASSWORD)).status_code == 429


@pytest.fixture
async def auth_under_uvicorn(make_auth_settings):
    """Auth served the way `finops up` serves it (the runner's uvicorn options)."""
    servers = []

    async def start(**overrides):
        settings = make_auth_settings(
            port=free_port(), login_max_failures_per_address=3, **overrides
        )
        config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        await wait_until(lambda: server.started or task.done(), 30, "auth under uvicorn")
        assert server.started, task
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=10)

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_forged_forwarded_for_headers_get_no_fresh_budget(auth_under_uvicorn):
    async with await auth_under_uvicorn() as http:
        for forged in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            response = await login(
                http, f"ghost-{forged}", WRONG, headers={"X-Forwarded-For": forged}
            )
            assert response.status_code == 401
        blocked = await login(http, "ghost-x", WRONG, headers={"X-Forwarded-For": "203.0.113.4"})
        assert blocked.status_code == 429, blocked.text


async def register_from(http: httpx.AsyncClient, forwarded_for: str) -> httpx.Response:
    username = unique_name()
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    return await http.post(
        "/api/auth/register", json=body, headers={"X-Forwarded-For": forwarded_for}
    )


async def forget_registrations(infra, address: str) -> None:
    """Earlier tests of the session registered from this address too."""
    redis = Redis.from_url(infra.redis_url)
    try:
        await redis.delete(REGISTRATIONS_PREFIX + registration_throttle_key(address))
    finally:
        await redis.aclose()


async def test_forged_forwarded_for_headers_get_no_fresh_registrations(auth_under_uvicorn, infra):
    async with await auth_under_uvicorn(registration_max_per_address=2) as http:
        await forget_registrations(infra, "127.0.0.1")
        for forged in ("203.0.113.1", "203.0.113.2"):
            assert (await register_from(http, forged)).status_code == 201
        blocked = await register_from(http, "203.0.113.3")
        assert blocked.status_code == 429, blocked.text
        assert blocked.json()["error"]["code"] == "too_many_registrations"


async def test_behind_a_configured_proxy_each_client_registers_on_its_own_budget(
    auth_under_uvicorn,
):
    async with await auth_under_uvicorn(
        trusted_proxies=["127.0.0.1"], registration_max_per_address=2
    ) as http:
        client, other = (f"2001:db8:{uuid.uuid4().hex[:4]}:{n}::7" for n in (1, 2))
        assert (await register_from(http, client)).status_code == 201
        assert (await register_from(http, client.replace("::7", "::8"))).status_code == 201
        blocked = await register_from(http, client.replace("::7", "::9"))  # the same /64
        assert blocked.status_code == 429, blocked.text
        assert (await register_from(http, other)).status_code == 201


async def test_a_configured_proxy_is_believed(auth_under_uvicorn):
    async with await auth_under_uvicorn(trusted_proxies=["127.0.0.1"]) as http:
        for n in range(3):
            response = await login(
                http, f"ghost{n}", WRONG, headers={"X-Forwarded-For": "198.51.100.7"}
            )
            assert response.status_code == 401
        blocked = await login(http, "ghost9", WRONG, headers={"X-Forwarded-For": "198.51.100.7"})
        assert blocked.status_code == 429
        other = await login(http, "ghost9", WRONG, headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 401
