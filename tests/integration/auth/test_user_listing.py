"""The admin listing of users: every account, with warnings about lookalike email addresses."""

from __future__ import annotations

import pytest
from auth_helpers import PASSWORD, unique_name

pytestmark = pytest.mark.integration

CYRILLIC_A = "\u0430"


async def all_users(client, admin) -> list[dict]:
    users, offset = [], 0
    while True:
        page = await client.get(
            "/api/users", params={"limit": 500, "offset": offset}, headers=admin.headers
        )
        assert page.status_code == 200, page.text
        users += page.json()
        if len(page.json()) < 500:
            return users
        offset += 500


async def test_admins_see_lookalike_emails_flagged(client, accounts):
    admin = await accounts.create("admin")
    genuine = await accounts.register()
    name = unique_name()
    lookalike = f"{CYRILLIC_A}{genuine.email[1:]}"  # a real address, first letter Cyrillic
    registered = await client.post(
        "/api/auth/register", json={"username": name, "email": lookalike, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text  # accepted, but flagged below

    by_id = {user["id"]: user for user in await all_users(client, admin)}

    flagged = by_id[registered.json()["id"]]
    assert flagged["email"] == lookalike
    assert [w["code"] for w in flagged["warnings"]] == ["email_mixed_scripts"]
    assert flagged["warnings"][0]["scripts"] == ["Cyrillic", "Latin"]
    assert by_id[genuine.id]["warnings"] == []
    assert set(by_id[admin.id]) == {
        "id", "username", "email", "role", "is_active", "created_at", "teams", "warnings",
    }  # fmt: skip


async def test_the_listing_is_for_admins_and_pages_are_bounded(client, accounts):
    operator = await accounts.create("operator")
    assert (await client.get("/api/users", headers=operator.headers)).status_code == 403
    assert (await client.get("/api/users")).status_code == 401
    admin = await accounts.create("admin")
    first_two = await client.get("/api/users", params={"limit": 2}, headers=admin.headers)
    assert len(first_two.json()) == 2
    next_one = await client.get(
        "/api/users", params={"limit": 1, "offset": 1}, headers=admin.headers
    )
    assert next_one.json() == first_two.json()[1:]
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"}):
        response = await client.get("/api/users", params=bad, headers=admin.headers)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "validation_error"


async def test_an_offset_past_postgresql_bigint_is_422_not_500(client, accounts):
    admin = await accounts.create("admin")
    response = await client.get("/api/users", params={"offset": 2**63}, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    last = await client.get("/api/users", params={"offset": 2**63 - 1}, headers=admin.headers)
    assert (last.status_code, last.json()) == (200, [])
