"""Refresh-token rotation and reuse detection; logout revoking the token and its session."""

from __future__ import annotations

import time

import pytest
from auth_helpers import bearer, claims_of

from finops.common.auth import blocklist_key

pytestmark = pytest.mark.integration


async def refresh(client, token: str):
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def me_status(client, access_token: str) -> int:
    return (await client.get("/api/users/me", headers=bearer(access_token))).status_code


async def test_refresh_rotates_both_tokens(client, accounts):
    user = await accounts.create()
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["refresh_token"] != user.refresh_token
    assert pair["access_token"] != user.access_token
    assert pair["expires_in"] == 900
    assert await me_status(client, pair["access_token"]) == 200
    again = await refresh(client, pair["refresh_token"])
    assert again.status_code == 200


async def test_refresh_through_the_oauth2_token_endpoint(client, accounts):
    user = await accounts.create()
    response = await client.post(
        "/api/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": user.refresh_token},
    )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] != user.refresh_token


async def test_a_refresh_through_the_token_endpoint_narrows_to_the_scope_asked(client, accounts):
    """OAuth2's refresh request takes ``scope`` (it was ignored: the full scopes came back);
    asking for one the session does not hold is 400 and leaves the token unspent."""
    user = await accounts.create()

    async def refresh_for(scope: str, token: str):
        return await client.post(
            "/api/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "scope": scope},
        )

    wider = await refresh_for("users:write", user.refresh_token)
    assert wider.status_code == 400, wider.text
    assert wider.json()["error"]["code"] == "invalid_scope"
    narrowed = await refresh_for("healing:read", user.refresh_token)  # still unspent
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "healing:read"
    assert claims_of(narrowed.json()["access_token"])[1]["scope"] == "healing:read"
    # the session is narrowed from here on: its next refresh holds no more
    wider_again = await refresh_for("events:write", narrowed.json()["refresh_token"])
    assert wider_again.json()["error"]["code"] == "invalid_scope"
    # the account has events:write: the answer says it is the session that lacks it
    assert wider_again.json()["error"]["message"].startswith(
        "the requested scope exceeds what this session holds"
    )
    assert wider_again.json()["error"]["details"] == {"not_granted": ["events:write"]}


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(client, accounts):
    user = await accounts.create()
    first_access, first_refresh = user.access_token, user.refresh_token
    second = (await refresh(client, first_refresh)).json()
    third = (await refresh(client, second["refresh_token"])).json()
    other_session = await accounts.login(user)  # a separate login: another family

    replay = await refresh(client, first_refresh)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "refresh_token_reused"

    newest = await refresh(client, third["refresh_token"])
    assert newest.status_code == 401
    assert newest.json()["error"]["code"] == "invalid_refresh_token"
    for access in (first_access, second["access_token"], third["access_token"]):
        assert await me_status(client, access) == 401
    assert await me_status(client, other_session.access_token) == 200
    assert (await refresh(client, other_session.refresh_token)).status_code == 200


@pytest.mark.parametrize("token", ["fo_rt_made-up", "x", "🙂" * 10])
async def test_unknown_refresh_tokens_are_401(client, token):
    response = await refresh(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"


async def test_logout_revokes_the_access_token_and_is_idempotent(client, accounts, auth_app):
    user = await accounts.create()
    assert await me_status(client, user.access_token) == 200
    first = await client.post("/api/auth/logout", headers=user.headers)
    assert first.status_code == 204
    assert first.content == b""
    refused = await client.get("/api/users/me", headers=user.headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert "revoked" in refused.json()["error"]["message"]
    again = await client.post("/api/auth/logout", headers=user.headers)
    assert again.status_code == 204


async def test_logout_keeps_the_jti_blocklisted_for_the_tokens_remaining_lifetime(
    client, accounts, auth_app
):
    user = await accounts.create()
    claims = (await client.get("/api/users/me", headers=user.headers)).json()
    assert claims["username"] == user.username
    jti, exp = claims_of(user.access_token)[1]["jti"], claims_of(user.access_token)[1]["exp"]
    assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 204
    ttl = await auth_app.state.redis.ttl(blocklist_key(jti))
    remaining = exp - time.time()
    assert remaining - 5 <= ttl <= remaining + 2, (ttl, remaining)


async def test_logout_revokes_the_refresh_token_of_its_session(client, accounts):
    user = await accounts.create()
    rotated = (await refresh(client, user.refresh_token)).json()
    assert (
        await client.post("/api/auth/logout", headers=bearer(rotated["access_token"]))
    ).status_code == 204
    response = await refresh(client, rotated["refresh_token"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert response.headers["www-authenticate"] == "Bearer"  # no bearer token was refused
    # The session's earlier access token is revoked with it.
    assert await me_status(client, user.access_token) == 401


async def test_logout_without_a_token_is_401(client):
    response = await client.post("/api/auth/logout")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"  # no token: no error code
    assert response.json()["error"]["code"] == "not_authenticated"
