"""Revocation that races with issuance: logout against refresh, key deletion against exchange.

Each race is replayed deterministically (a commit held open, or held just after it happened,
while the other use case runs), then run for real as concurrent requests many times over.
"Refused everywhere" is checked by a second verifier, built the way every other service
builds one (its own Redis connection, auth's public keys), not only by auth itself.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from auth_helpers import (
    PASSWORD,
    CommitGate,
    bearer,
    unique_name,
    until_blocked_on_a_lock_or_done,
)

from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.app import build_auth_service
from finops.auth.domain.errors import InvalidCredentials, InvalidRefreshToken
from finops.common.auth import installed_verifier

pytestmark = pytest.mark.integration

TRIALS = 30


def gated_service(auth_app, when: str):
    """The auth use cases over the app's database, Redis and keys, with a commit gate."""
    state = auth_app.state
    gate = CommitGate(lambda: PostgresUnitOfWork(state.db), when)
    service = build_auth_service(
        state.settings, state.db, state.redis, state.hashing, state.keys, uow=gate
    )
    return service, gate


async def principal_of(auth_app, token: str):
    return await installed_verifier(auth_app).verify(token, check_revoked=False)


async def refresh(client, token: str):
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def assert_session_is_dead(client, elsewhere, access_token: str, refresh_token: str):
    response = await refresh(client, refresh_token)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert (await client.get("/api/users/me", headers=bearer(access_token))).status_code == 401
    assert not await elsewhere(access_token)


# ---- logout against refresh ---------------------------------------------------------------


async def test_logout_just_after_a_refresh_committed_ends_the_new_generation(
    client, accounts, auth_app, elsewhere
):
    user = await accounts.create()
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    refreshing = asyncio.create_task(service.refresh(user.refresh_token))
    await asyncio.wait_for(gate.reached.wait(), 10)  # committed, not yet answered

    await service.logout(await principal_of(auth_app, user.access_token))
    gate.release.set()
    pair = await refreshing

    await assert_session_is_dead(client, elsewhere, pair.access_token, pair.refresh_token)
    assert not await elsewhere(user.access_token)


async def test_logout_during_an_uncommitted_refresh_revokes_what_that_refresh_issues(
    client, accounts, auth_app, elsewhere
):
    user = await accounts.create()
    service, gate = gated_service(auth_app, "before")
    gate.arm()
    refreshing = asyncio.create_task(service.refresh(user.refresh_token))
    await asyncio.wait_for(gate.reached.wait(), 10)  # new refresh token written, uncommitted

    logging_out = asyncio.create_task(
        service.logout(await principal_of(auth_app, user.access_token))
    )
    # Logout must wait for the refresh's transaction, not revoke around it.
    await until_blocked_on_a_lock_or_done(auth_app.state.db, logging_out)
    gate.release.set()
    pair = await refreshing
    await logging_out

    await assert_session_is_dead(client, elsewhere, pair.access_token, pair.refresh_token)


async def test_logout_with_an_early_generation_ends_every_later_one(client, accounts, elsewhere):
    user = await accounts.create()
    second = (await refresh(client, user.refresh_token)).json()
    third = (await refresh(client, second["refresh_token"])).json()
    logout = await client.post("/api/auth/logout", headers=user.headers)
    assert logout.status_code == 204
    await assert_session_is_dead(client, elsewhere, third["access_token"], third["refresh_token"])
    assert not await elsewhere(second["access_token"])


async def test_concurrent_refresh_and_logout_leave_no_live_token(client, accounts, elsewhere):
    survivors = []
    for _ in range(TRIALS):
        user = await accounts.create()
        refreshed, logout = await asyncio.gather(
            refresh(client, user.refresh_token),
            client.post("/api/auth/logout", headers=user.headers),
        )
        assert logout.status_code == 204
        assert refreshed.status_code in (200, 401), refreshed.text
        if refreshed.status_code == 200:
            pair = refreshed.json()
            still_refreshes = (await refresh(client, pair["refresh_token"])).status_code == 200
            if still_refreshes or await elsewhere(pair["access_token"]):
                survivors.append(pair)
    assert survivors == []


# ---- API key deletion against exchange ----------------------------------------------------


async def new_api_key(client, accounts):
    """(key id, key, the operator who created it and may delete it)."""
    operator = await accounts.create("operator")
    response = await client.post(
        "/api/auth/api-keys", json={"name": unique_name("key")}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"]), response.json()["key"], operator


async def exchange(client, key: str):
    return await client.post(
        "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": key}
    )


async def test_deleting_a_key_revokes_a_token_exchanged_at_that_moment(
    client, accounts, auth_app, elsewhere
):
    key_id, key, operator = await new_api_key(client, accounts)
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    exchanging = asyncio.create_task(service.exchange_api_key(key))
    await asyncio.wait_for(gate.reached.wait(), 10)  # the key looked valid and was touched

    await service.revoke_api_key(await principal_of(auth_app, operator.access_token), key_id)
    gate.release.set()
    pair = await exchanging

    assert not await elsewhere(pair.access_token)
    me = await client.get("/api/users/me", headers=bearer(pair.access_token))
    assert me.status_code == 401
    refused = await exchange(client, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_client"
    assert await elsewhere(operator.access_token)  # the deleting operator's session lives on


async def test_concurrent_exchange_and_key_deletion_leave_no_live_token(
    client, accounts, elsewhere
):
    survivors = []
    for _ in range(TRIALS):
        key_id, key, operator = await new_api_key(client, accounts)
        exchanged, deleted = await asyncio.gather(
            exchange(client, key),
            client.delete(f"/api/auth/api-keys/{key_id}", headers=operator.headers),
        )
        assert deleted.status_code == 204, deleted.text
        assert exchanged.status_code in (200, 401), exchanged.text
        if exchanged.status_code == 200 and await elsewhere(exchanged.json()["access_token"]):
            survivors.append(exchanged.json())
    assert survivors == []


# ---- role change against login, refresh and key exchange ------------------------------------


async def demote(client, admin, user) -> None:
    response = await client.patch(
        f"/api/users/{user.id}/role", json={"role": "agent"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def assert_only_agent_scopes_survive(auth_app, elsewhere, token: str) -> None:
    """The token is refused everywhere, or carries no more than the agent's scopes."""
    if await elsewhere(token):
        principal = await principal_of(auth_app, token)
        assert principal.role == "agent"
        assert not principal.has_scope("stats:read")


async def login_held_after_its_commit(auth_app, username: str) -> tuple[asyncio.Task, Any]:
    """A login of ``username`` held right after its commit (``gate.release.set()`` lets it
    go on)."""
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    logging_in = asyncio.create_task(service.login(username, PASSWORD, client_address="race"))
    await asyncio.wait_for(gate.reached.wait(), 10)
    return logging_in, gate


async def test_a_login_that_committed_before_a_demotion_answers_no_token_of_the_old_role(
    client, accounts, auth_app, elsewhere
):
    # The login had read the operator's role and committed its session, not yet recorded its
    # token among the user's live ones; the demotion blocklisted those it knew of. The token
    # answered carried the operator's scopes and worked on every service for 15 minutes.
    operator = await accounts.create("operator")
    admin = await accounts.create("admin")
    logging_in, gate = await login_held_after_its_commit(auth_app, operator.username)
    await demote(client, admin, operator)
    gate.release.set()
    pair = await logging_in
    assert await elsewhere(pair.access_token)
    await assert_only_agent_scopes_survive(auth_app, elsewhere, pair.access_token)


async def test_a_login_overtaken_by_a_demotion_and_a_deactivation_answers_no_session(
    client, accounts, auth_app
):
    # The login withdraws the session issued for the old role; the account, deactivated too
    # meanwhile, gets nothing issued again (it got a session refused at its first use).
    operator = await accounts.create("operator")
    admin = await accounts.create("admin")
    logging_in, gate = await login_held_after_its_commit(auth_app, operator.username)
    await demote(client, admin, operator)
    deactivated = await client.post(f"/api/users/{operator.id}/deactivate", headers=admin.headers)
    assert deactivated.status_code == 200, deactivated.text
    gate.release.set()
    with pytest.raises(InvalidCredentials):
        await logging_in


async def test_a_refresh_that_committed_before_a_demotion_answers_no_token_of_the_old_role(
    client, accounts, auth_app, elsewhere
):
    operator = await accounts.create("operator")
    admin = await accounts.create("admin")
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    refreshing = asyncio.create_task(service.refresh(operator.refresh_token))
    await asyncio.wait_for(gate.reached.wait(), 10)
    await demote(client, admin, operator)
    gate.release.set()
    try:
        pair = await refreshing
    except InvalidRefreshToken:
        return  # the demotion ended the session: nothing was answered
    await assert_only_agent_scopes_survive(auth_app, elsewhere, pair.access_token)


async def test_a_key_exchange_that_committed_before_a_demotion_answers_no_token_of_the_old_role(
    client, accounts, auth_app, elsewhere
):
    operator = await accounts.create("operator")
    admin = await accounts.create("admin")
    created = await client.post("/api/auth/api-keys", json={"name": "k"}, headers=operator.headers)
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    exchanging = asyncio.create_task(service.exchange_api_key(created.json()["key"]))
    await asyncio.wait_for(gate.reached.wait(), 10)
    await demote(client, admin, operator)
    gate.release.set()
    pair = await exchanging
    assert await elsewhere(pair.access_token)
    await assert_only_agent_scopes_survive(auth_app, elsewhere, pair.access_token)


# ---- team binding against login and key exchange --------------------------------------------


async def bind(client, admin, user, teams: list[str]) -> None:
    response = await client.put(
        f"/api/users/{user.id}/teams", json={"teams": teams}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def test_a_login_that_committed_before_a_team_binding_answers_a_token_of_the_new_teams(
    client, accounts, auth_app, elsewhere
):
    # The login had read the unbound account and committed its session, not yet recorded its
    # token; a token without the teams claim would name any team for 15 minutes.
    agent = await accounts.create("agent")
    admin = await accounts.create("admin")
    logging_in, gate = await login_held_after_its_commit(auth_app, agent.username)
    await bind(client, admin, agent, ["search"])
    gate.release.set()
    pair = await logging_in
    assert await elsewhere(pair.access_token)
    assert (await principal_of(auth_app, pair.access_token)).teams == frozenset({"search"})


async def test_a_key_exchange_that_committed_before_a_team_binding_answers_the_new_teams(
    client, accounts, auth_app, elsewhere
):
    agent = await accounts.create("agent")
    admin = await accounts.create("admin")
    created = await client.post(
        "/api/auth/api-keys", json={"name": "k", "user_id": agent.id}, headers=admin.headers
    )
    service, gate = gated_service(auth_app, "after")
    gate.arm()
    exchanging = asyncio.create_task(service.exchange_api_key(created.json()["key"]))
    await asyncio.wait_for(gate.reached.wait(), 10)
    await bind(client, admin, agent, ["search"])
    gate.release.set()
    pair = await exchanging
    assert await elsewhere(pair.access_token)
    assert (await principal_of(auth_app, pair.access_token)).teams == frozenset({"search"})
