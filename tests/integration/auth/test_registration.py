"""POST /api/auth/register: the user it creates, its validation, duplicates, bad input."""

from __future__ import annotations

import json
import random

import pytest
from asgi_lifespan import LifespanManager
from auth_helpers import PASSWORD, asgi_client, unique_name

from finops.auth.adapters.redis_store import REGISTRATIONS_PREFIX
from finops.auth.app import create_app
from finops.auth.domain.rules import registration_throttle_key

pytestmark = pytest.mark.integration


def account(**overrides: str) -> dict[str, str]:
    username = unique_name()
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    body.update(overrides)
    return body


def fields_in(response) -> dict[str, str]:
    """field -> problem type of a 422 answer."""
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    return {d["field"]: d["type"] for d in response.json()["error"]["details"]}


async def test_register_returns_the_user_without_any_secret(client, auth_app):
    username = unique_name()
    response = await client.post(
        "/api/auth/register",
        json={"username": username, "email": f"{username}@Example.COM", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "username", "email", "role", "is_active", "created_at", "teams"}
    assert body["teams"] is None  # a new account is not bound to teams
    assert body["username"] == username
    assert body["is_active"] is True
    assert body["email"] == f"{username}@example.com"  # the domain part is normalised
    assert body["role"] == "agent"
    stored = await auth_app.state.db.fetchval(
        "SELECT hashed_password FROM users WHERE username = $1", username
    )
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_duplicate_username_is_409_username_taken(client):
    first = account()
    assert (await client.post("/api/auth/register", json=first)).status_code == 201
    again = account(username=first["username"])
    response = await client.post("/api/auth/register", json=again)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


async def test_duplicate_email_differing_only_in_case_is_409_email_taken(client):
    first = account()
    assert (await client.post("/api/auth/register", json=first)).status_code == 201
    shouted = account(email=first["email"].upper())
    response = await client.post("/api/auth/register", json=shouted)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("overrides", "field", "kind"),
    [
        ({"username": "ab"}, "username", "username_format"),
        ({"username": "x" * 33}, "username", "username_format"),
        ({"username": "Upper"}, "username", "username_format"),
        ({"username": "x'; DROP TABLE users;--"}, "username", "username_format"),
        ({"username": "ユーザー名"}, "username", "username_format"),
        ({"email": "not-an-email"}, "email", "email_invalid"),
        ({"email": "a@b'; DELETE FROM users;--"}, "email", "email_invalid"),
        # the email is a bare address: no display name, no surrounding spaces
        ({"email": "Ann <ann@example.com>"}, "email", "email_invalid"),
        ({"email": " ann@example.com"}, "email", "email_invalid"),
        ({"password": "short"}, "password", "password_too_short"),
        ({"password": "p" * 129}, "password", "password_too_long"),
        # 130 code points as sent, over the schema's maxLength, though NFKC composes them to 65
        ({"password": "e\u0301" * 65}, "password", "password_too_long"),
        ({"password": "Correct Horse Battery Staple"}, "password", "password_common"),
        ({"password": "qwertyuiopasdfghjkl"}, "password", "password_common"),
    ],
)
async def test_invalid_fields_are_422_with_the_field_named(client, overrides, field, kind):
    response = await client.post("/api/auth/register", json=account(**overrides))
    assert fields_in(response) == {field: kind}


async def test_a_password_within_the_schemas_max_length_is_accepted_though_nfkc_expands_it(
    client,
):
    """128 code points, as OpenAPI's maxLength allows; NFKC makes 2,304 characters of them."""
    body = account(password="\ufdfa" * 128)
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    login = {"login": body["username"], "password": body["password"]}
    assert (await client.post("/api/auth/login", json=login)).status_code == 200


async def test_password_equal_to_username_or_email_is_refused(client):
    body = account(username="longusername12")
    body["password"] = "LongUsername12"
    assert fields_in(await client.post("/api/auth/register", json=body)) == {
        "password": "password_matches_identity"
    }
    body = account()
    body["password"] = body["email"]
    assert fields_in(await client.post("/api/auth/register", json=body)) == {
        "password": "password_matches_identity"
    }


async def test_every_invalid_field_is_reported_at_once(client):
    body = {"username": "A!", "email": "nope", "password": "short"}
    assert set(fields_in(await client.post("/api/auth/register", json=body))) == {
        "username",
        "email",
        "password",
    }


async def test_a_bad_username_and_a_common_password_are_reported_together(client):
    body = {"username": "Bad Name", "email": "bad.name@example.com", "password": "password1234"}
    assert fields_in(await client.post("/api/auth/register", json=body)) == {
        "username": "username_format",
        "password": "password_common",
    }


async def test_a_missing_field_is_reported_with_the_rules_the_others_break(client):
    body = {"username": "Bad Name", "password": "password1234"}
    assert fields_in(await client.post("/api/auth/register", json=body)) == {
        "username": "username_format",
        "email": "missing",
        "password": "password_common",
    }


async def test_unicode_email_and_password_are_accepted_and_work(client):
    username = unique_name()
    password = "pässwörd mit ümläüten ✓ 安全"
    body = {"username": username, "email": f"josé.{username}@exämple.com", "password": password}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    login = await client.post("/api/auth/login", json={"login": username, "password": password})
    assert login.status_code == 200, login.text


@pytest.mark.parametrize("field", ["username", "email", "password"])
@pytest.mark.parametrize("bad", ["\u0000", "\ud800", "\x1b[31m"])
async def test_control_characters_and_lone_surrogates_are_422_in_every_field(client, field, bad):
    body = account()
    body[field] = body[field][:6] + bad + body[field][6:]
    raw = json.dumps(body)  # ensure_ascii keeps the lone surrogate as an escape
    response = await client.post(
        "/api/auth/register", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert field in {d["field"] for d in response.json()["error"]["details"]}


async def test_malformed_json_is_400_invalid_json(client):
    response = await client.post(
        "/api/auth/register",
        content=b'{"username": "abc", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "body",
    [
        {"username": 123, "email": "a@example.com", "password": PASSWORD},
        {"username": "abcdef", "email": ["a@example.com"], "password": PASSWORD},
        {"username": "abcdef", "email": "a@example.com", "password": None},
        [],
        "just a string",
    ],
)
async def test_wrong_types_are_422(client, body):
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


async def test_fields_beyond_the_schema_are_refused(client):
    response = await client.post("/api/auth/register", json=account(role="admin"))
    assert set(fields_in(response)) == {"role"}


async def test_bodies_over_64_kib_are_413(client):
    body = account(password="p" * (65 * 1024))
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_sql_metacharacters_in_login_are_plain_data(client, auth_app):
    users_before = await auth_app.state.db.fetchval("SELECT count(*) FROM users")
    for login in ["' OR '1'='1", "admin'--", "x@y.z' OR 1=1;--", "%", "_"]:
        response = await client.post("/api/auth/login", json={"login": login, "password": "x"})
        assert response.status_code == 401, (login, response.text)
        assert response.json()["error"]["code"] == "invalid_credentials"
    assert await auth_app.state.db.fetchval("SELECT count(*) FROM users") >= users_before


async def test_registrations_are_throttled_per_client_address(make_auth_settings):
    # A script could register in a loop, each registration an argon2 hash of a core's time.
    app = create_app(make_auth_settings(registration_max_per_address=3))
    attacker_address = f"192.0.2.{random.randrange(1, 255)}"
    async with LifespanManager(app), asgi_client(app, attacker_address) as attacker:
        await app.state.redis.delete(
            REGISTRATIONS_PREFIX + registration_throttle_key(attacker_address)
        )
        first = account()
        answers = [await attacker.post("/api/auth/register", json=first)]
        answers.append(await attacker.post("/api/auth/register", json=first))  # taken: counts
        answers.append(await attacker.post("/api/auth/register", json=account()))
        assert [a.status_code for a in answers] == [201, 409, 201]
        refused = await attacker.post("/api/auth/register", json=account())
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_registrations"
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["details"] == {
            "retry_after_seconds": int(refused.headers["retry-after"])
        }
        neighbour_address = f"198.51.100.{random.randrange(1, 255)}"
        async with asgi_client(app, neighbour_address) as neighbour:
            answer = await neighbour.post("/api/auth/register", json=account())
            assert answer.status_code == 201, answer.text


async def test_closed_registration_is_403_registration_closed(make_auth_settings):
    # open, anyone makes a second account, and with two accounts the breakers' quorum
    app = create_app(make_auth_settings(registration_open=False))
    async with LifespanManager(app), asgi_client(app) as http:
        refused = await http.post("/api/auth/register", json=account())
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "registration_closed"
    assert refused.json()["error"]["message"] == (
        "public registration is closed on this platform: an admin creates accounts"
    )
