"""Role changes and team bindings by admins; API keys created by operators and exchanged by
agents."""

from __future__ import annotations

import uuid

import pytest
from auth_helpers import bearer, claims_of

from finops.common.auth.scopes import ROLE_SCOPES, Role

pytestmark = pytest.mark.integration


async def set_role(client, actor, user_id: str, role: str):
    return await client.patch(
        f"/api/users/{user_id}/role", json={"role": role}, headers=actor.headers
    )


async def test_an_admin_changes_a_role_and_ends_the_users_sessions(client, accounts):
    admin = await accounts.create("admin")
    agent = await accounts.create("agent")
    response = await set_role(client, admin, agent.id, "operator")
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "operator"
    assert response.json()["id"] == agent.id
    # Old tokens carried the agent's scopes: they are revoked, refresh tokens too.
    assert (await client.get("/api/users/me", headers=agent.headers)).status_code == 401
    stale = await client.post("/api/auth/refresh", json={"refresh_token": agent.refresh_token})
    assert stale.status_code == 401
    fresh = await accounts.login(agent)
    scopes = set(claims_of(fresh.access_token)[1]["scope"].split())
    assert scopes == ROLE_SCOPES[Role.OPERATOR]
    me = await client.get("/api/users/me", headers=fresh.headers)
    assert me.json()["role"] == "operator"


@pytest.mark.parametrize("role", ["agent", "operator"])
async def test_only_admins_change_roles(client, accounts, role):
    actor = await accounts.create(role)
    target = await accounts.create()
    response = await set_role(client, actor, target.id, "admin")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


async def test_role_change_errors(client, accounts):
    admin = await accounts.create("admin")
    missing = await set_role(client, admin, str(uuid.uuid4()), "operator")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "user_not_found"
    bad_id = await set_role(client, admin, "not-a-uuid", "operator")
    assert bad_id.status_code == 422
    bad_role = await set_role(client, admin, admin.id, "superuser")
    assert bad_role.status_code == 422
    assert bad_role.json()["error"]["details"][0]["field"] == "role"
    anonymous = await client.patch(f"/api/users/{admin.id}/role", json={"role": "agent"})
    assert anonymous.status_code == 401


async def set_teams(client, actor, user_id: str, teams: list[str] | None):
    return await client.put(
        f"/api/users/{user_id}/teams", json={"teams": teams}, headers=actor.headers
    )


async def test_an_admin_binds_teams_ends_the_users_sessions_and_tokens_carry_them(client, accounts):
    admin = await accounts.create("admin")
    agent = await accounts.create("agent")
    assert "teams" not in claims_of(agent.access_token)[1]
    me = await client.get("/api/users/me", headers=agent.headers)
    assert me.json()["teams"] is None
    created = await client.post(
        "/api/auth/api-keys", json={"name": "k", "user_id": agent.id}, headers=admin.headers
    )
    key = created.json()["key"]
    by_key = (await exchange(client, key)).json()["access_token"]

    response = await set_teams(client, admin, agent.id, ["search", "finance", "search"])

    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent.id
    assert response.json()["teams"] == ["finance", "search"]
    # Old tokens carried no teams claim: they are revoked, the key's and refresh tokens too.
    assert (await client.get("/api/users/me", headers=agent.headers)).status_code == 401
    assert (await client.get("/api/users/me", headers=bearer(by_key))).status_code == 401
    stale = await client.post("/api/auth/refresh", json={"refresh_token": agent.refresh_token})
    assert stale.status_code == 401
    fresh = await accounts.login(agent)
    assert claims_of(fresh.access_token)[1]["teams"] == ["finance", "search"]
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": fresh.refresh_token})
    assert claims_of(refreshed.json()["access_token"])[1]["teams"] == ["finance", "search"]
    exchanged = (await exchange(client, key)).json()["access_token"]
    assert claims_of(exchanged)[1]["teams"] == ["finance", "search"]
    me = await client.get("/api/users/me", headers=bearer(exchanged))
    assert me.json()["teams"] == ["finance", "search"]

    # Unbound again: the claim disappears, and the bound tokens are ended.
    unbound = await set_teams(client, admin, agent.id, None)
    assert unbound.status_code == 200 and unbound.json()["teams"] is None
    assert (await client.get("/api/users/me", headers=bearer(exchanged))).status_code == 401
    again = (await exchange(client, key)).json()["access_token"]
    assert "teams" not in claims_of(again)[1]
    listed = await client.get("/api/users", params={"limit": 1000}, headers=admin.headers)
    assert next(u for u in listed.json() if u["id"] == agent.id)["teams"] is None


async def test_binding_the_same_teams_again_ends_no_session(client, accounts):
    admin = await accounts.create("admin")
    agent = await accounts.create("agent")
    # never bound: unbinding it changes nothing
    assert (await set_teams(client, admin, agent.id, None)).status_code == 200
    assert (await client.get("/api/users/me", headers=agent.headers)).status_code == 200
    assert (await set_teams(client, admin, agent.id, ["ops", "search"])).status_code == 200
    bound = await accounts.login(agent)
    assert sorted(claims_of(bound.access_token)[1]["teams"]) == ["ops", "search"]
    # the same teams again, in another order and with a duplicate: the session lives on
    again = await set_teams(client, admin, agent.id, ["search", "ops", "ops"])
    assert again.status_code == 200
    assert sorted(again.json()["teams"]) == ["ops", "search"]
    assert (await client.get("/api/users/me", headers=bound.headers)).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": bound.refresh_token})
    assert refreshed.status_code == 200


@pytest.mark.parametrize("role", ["agent", "operator"])
async def test_only_admins_bind_teams(client, accounts, role):
    actor = await accounts.create(role)
    response = await set_teams(client, actor, actor.id, None)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


async def test_team_binding_errors(client, accounts):
    admin = await accounts.create("admin")
    missing = await set_teams(client, admin, str(uuid.uuid4()), ["ops"])
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "user_not_found"
    bad = await set_teams(client, admin, admin.id, ["ops", "", "x" * 129, "a\u202eb"])
    assert bad.status_code == 422
    fields = [d["field"] for d in bad.json()["error"]["details"]]
    assert fields == ["teams.1", "teams.2", "teams.3"]
    too_many = await set_teams(client, admin, admin.id, [f"t{i}" for i in range(33)])
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"][0]["field"] == "teams"
    not_a_list = await client.put(
        f"/api/users/{admin.id}/teams", json={"teams": "ops"}, headers=admin.headers
    )
    assert not_a_list.status_code == 422
    absent = await client.put(f"/api/users/{admin.id}/teams", json={}, headers=admin.headers)
    assert absent.status_code == 422
    me = await client.get("/api/users/me", headers=admin.headers)
    assert me.json()["teams"] is None  # nothing of a refused binding was stored
    anonymous = await client.put(f"/api/users/{admin.id}/teams", json={"teams": None})
    assert anonymous.status_code == 401


async def test_an_operator_creates_a_key_for_an_agent_who_exchanges_it(client, accounts):
    operator = await accounts.create("operator")
    agent = await accounts.create("agent")
    created = await client.post(
        "/api/auth/api-keys",
        json={"name": "build agent 7", "user_id": agent.id},
        headers=operator.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("fo_ak_") and len(key) > 40
    assert body["prefix"] == key[:12]
    assert body["user_id"] == agent.id and body["created_by"] == operator.id
    assert body["revoked_at"] is None

    listed = await client.get("/api/auth/api-keys", headers=operator.headers)
    assert listed.status_code == 200
    entry = next(k for k in listed.json() if k["id"] == body["id"])
    assert "key" not in entry and "key_hash" not in entry  # shown once, never again

    exchanged = await client.post(
        "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": key}
    )
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()
    assert token["refresh_token"] is None
    claims = claims_of(token["access_token"])[1]
    assert claims["sub"] == agent.id and claims["role"] == "agent"
    assert set(claims["scope"].split()) == ROLE_SCOPES[Role.AGENT]
    me = await client.get("/api/users/me", headers=bearer(token["access_token"]))
    assert me.json()["username"] == agent.username
    listed = await client.get("/api/auth/api-keys", headers=operator.headers)
    used = next(k for k in listed.json() if k["id"] == body["id"])
    assert used["last_used_at"] is not None

    revoked = await client.delete(f"/api/auth/api-keys/{body['id']}", headers=operator.headers)
    assert revoked.status_code == 204
    again = await client.delete(f"/api/auth/api-keys/{body['id']}", headers=operator.headers)
    assert again.status_code == 204
    refused = await client.post(
        "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": key}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_client"
    # The token the key was exchanged for is revoked with it.
    assert (
        await client.get("/api/users/me", headers=bearer(token["access_token"]))
    ).status_code == 401


async def exchange(client, key: str):
    return await client.post(
        "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": key}
    )


async def test_a_key_an_operator_made_for_an_agent_stops_working_when_the_agent_is_promoted(
    client, accounts
):
    # The operator saw the key once: after the agent became an admin, that key exchanged for
    # an admin token (users:write), with which the operator made itself an admin.
    operator = await accounts.create("operator")
    agent = await accounts.create("agent")
    admin = await accounts.create("admin")
    created = await client.post(
        "/api/auth/api-keys", json={"name": "bot", "user_id": agent.id}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert (await exchange(client, key)).status_code == 200

    assert (await set_role(client, admin, agent.id, "admin")).status_code == 200
    refused = await exchange(client, key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_client"

    # Back to a role the operator may make keys for: the key works again, as an agent's.
    assert (await set_role(client, admin, agent.id, "agent")).status_code == 200
    again = await exchange(client, key)
    assert again.status_code == 200, again.text
    assert claims_of(again.json()["access_token"])[1]["role"] == "agent"


async def test_keys_an_operator_made_for_others_stop_working_when_it_is_demoted(client, accounts):
    operator = await accounts.create("operator")
    agent = await accounts.create("agent")
    admin = await accounts.create("admin")
    for_agent = await client.post(
        "/api/auth/api-keys", json={"name": "bot", "user_id": agent.id}, headers=operator.headers
    )
    own = await client.post("/api/auth/api-keys", json={"name": "me"}, headers=operator.headers)
    assert (await set_role(client, admin, operator.id, "agent")).status_code == 200
    refused = await exchange(client, for_agent.json()["key"])
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_client"
    # Its own key still grants its own (now lower) role.
    mine = await exchange(client, own.json()["key"])
    assert mine.status_code == 200, mine.text
    assert claims_of(mine.json()["access_token"])[1]["role"] == "agent"
    # A key an admin made for the agent is not affected by anyone's role.
    by_admin = await client.post(
        "/api/auth/api-keys", json={"name": "b", "user_id": agent.id}, headers=admin.headers
    )
    assert (await exchange(client, by_admin.json()["key"])).status_code == 200


async def test_key_creation_rules(client, accounts):
    agent = await accounts.create("agent")
    operator = await accounts.create("operator")
    admin = await accounts.create("admin")
    by_agent = await client.post("/api/auth/api-keys", json={"name": "x"}, headers=agent.headers)
    assert by_agent.status_code == 403
    assert by_agent.json()["error"]["code"] == "insufficient_scope"
    for_admin = await client.post(
        "/api/auth/api-keys", json={"name": "x", "user_id": admin.id}, headers=operator.headers
    )
    assert for_admin.status_code == 403
    assert for_admin.json()["error"]["code"] == "role_not_allowed"
    for_nobody = await client.post(
        "/api/auth/api-keys",
        json={"name": "x", "user_id": str(uuid.uuid4())},
        headers=operator.headers,
    )
    assert for_nobody.status_code == 404
    for_self = await client.post(
        "/api/auth/api-keys", json={"name": "mine"}, headers=operator.headers
    )
    assert for_self.status_code == 201
    assert for_self.json()["user_id"] == operator.id
    blank = await client.post("/api/auth/api-keys", json={"name": "  "}, headers=operator.headers)
    assert blank.status_code == 422


async def test_keys_of_others_are_invisible_to_operators_but_not_to_admins(client, accounts):
    owner = await accounts.create("operator")
    stranger = await accounts.create("operator")
    admin = await accounts.create("admin")
    key = (
        await client.post("/api/auth/api-keys", json={"name": "k"}, headers=owner.headers)
    ).json()
    seen_by_stranger = await client.get("/api/auth/api-keys", headers=stranger.headers)
    assert key["id"] not in {k["id"] for k in seen_by_stranger.json()}
    hidden = await client.delete(f"/api/auth/api-keys/{key['id']}", headers=stranger.headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "api_key_not_found"
    seen_by_admin = await client.get("/api/auth/api-keys", headers=admin.headers)
    assert key["id"] in {k["id"] for k in seen_by_admin.json()}
    assert (
        await client.delete(f"/api/auth/api-keys/{key['id']}", headers=admin.headers)
    ).status_code == 204


async def test_a_wrong_api_key_is_401_invalid_client(client):
    for secret in ("fo_ak_wrong", "x", "🙂"):
        response = await client.post(
            "/api/auth/token", data={"grant_type": "client_credentials", "client_secret": secret}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_client"
