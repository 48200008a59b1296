"""An admin deactivates a user: every token, refresh token and API key of it stops at once,
on every service (checked by a second verifier, as another service would)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
from auth_helpers import CommitGate, unique_name, until_blocked_on_a_lock_or_done

from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.adapters.redis_store import RedisTokenRevocations
from finops.auth.app import build_auth_service
from finops.auth.domain.errors import LastAdmin
from finops.auth.service_layer.accounts import deactivate_account
from finops.common import migrations

pytestmark = pytest.mark.integration


async def deactivate(client, actor, user_id: str):
    return await client.post(f"/api/users/{user_id}/deactivate", headers=actor.headers)


async def exchange(client, key: str):
    return await client.post(
        "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": key}
    )


async def test_deactivation_refuses_every_credential_of_the_user_everywhere(
    client, accounts, elsewhere
):
    admin = await accounts.create("admin")
    operator = await accounts.create("operator")
    agent = await accounts.create("agent")
    created = await client.post(
        "/api/auth/api-keys", json={"name": "ci", "user_id": agent.id}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    exchanged = (await exchange(client, key)).json()["access_token"]
    assert await elsewhere(agent.access_token) and await elsewhere(exchanged)

    response = await deactivate(client, admin, agent.id)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent.id
    assert response.json()["is_active"] is False

    assert not await elsewhere(agent.access_token)
    assert not await elsewhere(exchanged)
    assert (await client.get("/api/users/me", headers=agent.headers)).status_code == 401
    stale = await client.post("/api/auth/refresh", json={"refresh_token": agent.refresh_token})
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "invalid_refresh_token"
    refused = await exchange(client, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_client"
    login = await client.post(
        "/api/auth/login", json={"login": agent.username, "password": agent.password}
    )
    assert login.status_code == 401
    assert login.json()["error"]["code"] == "invalid_credentials"
    keys = (await client.get("/api/auth/api-keys", headers=admin.headers)).json()
    assert [k["revoked_at"] is not None for k in keys if k["user_id"] == agent.id] == [True]
    # Other accounts are untouched, and repeating the deactivation is harmless.
    assert await elsewhere(operator.access_token) and await elsewhere(admin.access_token)
    assert (await deactivate(client, admin, agent.id)).json()["is_active"] is False


async def test_a_login_racing_with_deactivation_leaves_no_live_token(
    client, accounts, auth_app, elsewhere
):
    admin = await accounts.create("admin")
    agent = await accounts.register()
    state = auth_app.state
    gate = CommitGate(lambda: PostgresUnitOfWork(state.db), "after")
    service = build_auth_service(
        state.settings, state.db, state.redis, state.hashing, state.keys, uow=gate
    )
    gate.arm()
    logging_in = asyncio.create_task(
        service.login(agent.username, agent.password, client_address="10.1.1.1")
    )
    await asyncio.wait_for(gate.reached.wait(), 10)  # the session is written, not yet answered
    assert (await deactivate(client, admin, agent.id)).status_code == 200
    gate.release.set()
    pair = await logging_in

    assert not await elsewhere(pair.access_token)
    refused = await client.post("/api/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert refused.status_code == 401


async def test_only_admins_deactivate_and_unknown_users_are_404(client, accounts):
    operator = await accounts.create("operator")
    agent = await accounts.create("agent")
    forbidden = await deactivate(client, operator, agent.id)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "insufficient_scope"
    assert (await client.post(f"/api/users/{agent.id}/deactivate")).status_code == 401

    admin = await accounts.create("admin")
    missing = await deactivate(client, admin, str(uuid.uuid4()))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "user_not_found"
    assert (await deactivate(client, admin, "not-a-uuid")).status_code == 422


async def test_two_concurrent_deactivations_of_the_last_two_admins_leave_one(
    scratch_database, infra
):
    """On a database of its own, so that exactly two admins exist."""
    await asyncio.to_thread(migrations.upgrade, scratch_database, "head", ["auth"])
    pool = await asyncpg.create_pool(scratch_database, min_size=2, max_size=4)
    redis = aioredis.from_url(infra.redis_url)
    try:
        admins = [
            await pool.fetchval(
                "INSERT INTO users (username, email, hashed_password, role)"
                " VALUES ($1, $2, 'h', 'admin') RETURNING id",
                name,
                f"{name}@example.com",
            )
            for name in (unique_name("adm"), unique_name("adm"))
        ]
        revocations = RedisTokenRevocations(redis, 900)
        gate = CommitGate(lambda: PostgresUnitOfWork(pool), "before")
        gate.arm()
        first = asyncio.create_task(
            deactivate_account(gate(), revocations, admins[0], datetime.now(UTC))
        )
        await asyncio.wait_for(gate.reached.wait(), 10)  # counted 2 admins, not committed
        second = asyncio.create_task(
            deactivate_account(PostgresUnitOfWork(pool), revocations, admins[1], datetime.now(UTC))
        )
        await until_blocked_on_a_lock_or_done(pool, second)
        gate.release.set()
        assert (await first).is_active is False
        with pytest.raises(LastAdmin):
            await second
        active = await pool.fetchval(
            "SELECT count(*) FROM users WHERE role = 'admin' AND is_active"
        )
        assert active == 1
    finally:
        await redis.aclose()
        await pool.close()


async def test_a_token_of_an_account_disabled_behind_the_blocklist_is_invalid_token(
    client, accounts, auth_app
):
    # An account disabled in the database without its blocklist entry (written by hand, or a
    # Redis that lost its data) was answered 401 not_authenticated, the code for "no bearer
    # token", though a token was sent: a client could not tell it from a missing header.
    user = await accounts.create()
    await auth_app.state.db.execute(
        "UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(user.id)
    )
    response = await client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
