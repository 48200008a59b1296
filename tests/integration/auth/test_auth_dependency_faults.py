"""Auth with PostgreSQL or Redis frozen or down: a fast 503 ``dependency_unavailable`` with
Retry-After, never a 500 and never a hang; a revocation that cannot be checked or written
fails closed.

The service reaches both servers through a :class:`FaultyLink`, so a test can freeze (bytes
stop, connections stay open) or cut (connections reset, new ones refused) one of them without
disturbing the rest of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from auth_helpers import Account, Accounts, asgi_client
from fault_injection import FaultyLink
from support import wait_until

from finops.auth.app import create_app

pytestmark = pytest.mark.integration

#: A hang guard, not a latency assertion: a request stuck on a dead server fails the test.
HANG_GUARD_S = 5.0

Operation = Callable[[httpx.AsyncClient, Account], Awaitable[httpx.Response]]


class Faults:
    def __init__(self, postgres: FaultyLink, redis: FaultyLink) -> None:
        self.links = {"postgres": postgres, "redis": redis}

    @contextlib.asynccontextmanager
    async def injected(self, dependency: str, fault: str) -> AsyncIterator[None]:
        link = self.links[dependency]
        if fault == "frozen":
            link.freeze()
        else:
            await link.cut()
        try:
            yield
        finally:
            await link.restore()


@pytest.fixture(scope="module")
async def faulty(make_auth_settings, infra) -> AsyncIterator[tuple[httpx.AsyncClient, Faults]]:
    postgres = await FaultyLink(infra.database_url).start()
    redis = await FaultyLink(infra.redis_url).start()
    app = create_app(make_auth_settings(database_url=postgres.url, redis_url=redis.url))
    try:
        async with LifespanManager(app, startup_timeout=60), asgi_client(app) as client:
            client.accounts = Accounts(app, client)  # type: ignore[attr-defined]
            yield client, Faults(postgres, redis)
    finally:
        await postgres.close()
        await redis.close()


@pytest.fixture
async def account(faulty) -> Account:
    """A fresh logged-in account per test: a fault may leave a refresh token spent."""
    accounts = faulty[0].accounts
    return await accounts.login(await accounts.register())


async def login(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"login": account.username, "password": account.password}
    )


async def register(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    name = "x" + account.username
    return await client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": account.password},
    )


async def refresh(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})


async def me(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.get("/api/users/me", headers=account.headers)


async def logout(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.post("/api/auth/logout", headers=account.headers)


NEEDS = {
    "postgres": [login, register, refresh, me],
    # me and logout: the revocation blocklist can be neither read nor written (fail closed).
    "redis": [login, refresh, me, logout],
}
CASES = [
    pytest.param(dependency, fault, operation, id=f"{dependency}-{fault}-{operation.__name__}")
    for dependency, operations in NEEDS.items()
    for fault in ("frozen", "down")
    for operation in operations
]


def assert_dependency_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("dependency", "fault", "operation"), CASES)
async def test_a_dead_dependency_gives_503_with_retry_after_not_500_or_a_hang(
    faulty, account, dependency: str, fault: str, operation: Operation
) -> None:
    client, faults = faulty
    async with faults.injected(dependency, fault):
        async with asyncio.timeout(HANG_GUARD_S):
            response = await operation(client, account)
    assert_dependency_unavailable(response)


@pytest.mark.parametrize("fault", ["frozen", "down"])
async def test_registration_needs_no_redis(faulty, account, fault: str) -> None:
    # Its count per client address is skipped (logged); the hash slots still bound it.
    client, faults = faulty
    async with faults.injected("redis", fault):
        async with asyncio.timeout(HANG_GUARD_S):
            response = await register(client, account)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("dependency", ["postgres", "redis"])
async def test_service_answers_again_once_a_frozen_dependency_thaws(
    faulty, account, dependency: str
) -> None:
    client, faults = faulty
    async with faults.injected(dependency, "frozen"):
        async with asyncio.timeout(HANG_GUARD_S):
            assert (await login(client, account)).status_code == 503

    async def logs_in() -> bool:
        return (await login(client, account)).status_code == 200

    await wait_until(logs_in, 30, f"a login after {dependency} thawed")


async def test_a_refresh_refused_while_redis_is_down_works_once_it_is_back(faulty, account) -> None:
    """The refresh token is spent only together with the new session being recorded in
    Redis; otherwise a short Redis outage would end every session refreshing during it."""
    client, faults = faulty
    async with faults.injected("redis", "down"):
        assert_dependency_unavailable(await refresh(client, account))
    retried = await refresh(client, account)
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] != account.refresh_token


@pytest.mark.parametrize("dependency", ["postgres", "redis"])
async def test_the_first_request_after_a_restart_succeeds(faulty, account, dependency: str) -> None:
    """Pooled connections that died while idle are replaced, not reported as failures."""
    client, faults = faulty
    assert (await login(client, account)).status_code == 200  # the pools hold connections
    async with faults.injected(dependency, "down"):
        pass  # every connection reset while idle
    response = await login(client, account)
    assert response.status_code == 200, response.text
