"""Login (JSON and OAuth2 form), the token it returns, equal failures, throttling, rehashing."""

from __future__ import annotations

import time
import uuid

import bcrypt
import pytest
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from auth_helpers import PASSWORD, asgi_client, claims_of, unique_name

from finops.auth.app import create_app
from finops.common.auth.scopes import ROLE_SCOPES, Role

pytestmark = pytest.mark.integration


async def insert_user(app, password_hash: str) -> str:
    username = unique_name("legacy")
    await app.state.db.execute(
        "INSERT INTO users (username, email, hashed_password) VALUES ($1, $2, $3)",
        username,
        f"{username}@example.com",
        password_hash,
    )
    return username


async def test_login_by_username_returns_a_bearer_token_pair_with_every_claim(
    client, accounts, auth_app
):
    user = await accounts.register()
    response = await client.post(
        "/api/auth/login", json={"login": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith("fo_rt_")
    header, claims = claims_of(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == auth_app.state.keys.signer().kid
    assert claims["sub"] == user.id
    assert claims["username"] == user.username
    assert claims["role"] == "agent"
    assert set(claims["scope"].split()) == ROLE_SCOPES[Role.AGENT]
    assert body["scope"] == claims["scope"]
    assert claims["iss"] == "finops-auth" and claims["aud"] == "finops"
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    assert len(claims["jti"]) == 32
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}


async def test_login_by_email_ignores_case(client, accounts):
    user = await accounts.register()
    response = await client.post(
        "/api/auth/login", json={"login": user.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])[1]["sub"] == user.id


async def test_unknown_user_wrong_password_and_inactive_user_get_the_same_answer(
    client, accounts, auth_app
):
    user = await accounts.register()
    inactive = await accounts.register()
    await auth_app.state.db.execute(
        "UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(inactive.id)
    )
    attempts = [
        {"login": user.username, "password": PASSWORD + "x"},
        {"login": unique_name("nobody"), "password": PASSWORD},
        {"login": f"{unique_name()}@example.com", "password": PASSWORD},
        {"login": inactive.username, "password": PASSWORD},
    ]
    answers = [await client.post("/api/auth/login", json=body) for body in attempts]
    assert {a.status_code for a in answers} == {401}
    assert all(a.json() == answers[0].json() for a in answers)
    assert answers[0].json()["error"]["code"] == "invalid_credentials"
    assert {a.headers["www-authenticate"] for a in answers} == {"Bearer"}


async def test_an_unknown_user_costs_a_password_hash_too(client, accounts, monkeypatch):
    """Timing must not tell unknown users apart: a wrong password and an unknown user each
    cost one argon2id verification, against a hash of the same parameters (the cost)."""
    user = await accounts.register()
    verified: list[str] = []  # the parameters of each hash verified: "$argon2id$v=19$m=…"
    real_verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        verified.append(hash.rsplit("$", 2)[0])
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)

    async def verifications(body: dict[str, str]) -> list[str]:
        verified.clear()
        response = await client.post("/api/auth/login", json=body)
        assert response.status_code == 401
        return list(verified)

    wrong = await verifications({"login": user.username, "password": f"wrong {PASSWORD}"})
    unknown = await verifications({"login": unique_name("ghost"), "password": PASSWORD})
    assert len(wrong) == 1 and wrong[0].startswith("$argon2id$")
    assert unknown == wrong


async def test_oauth2_password_form_at_token_endpoint(client, accounts):
    user = await accounts.register()
    response = await client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    assert claims_of(response.json()["access_token"])[1]["sub"] == user.id
    # grant_type may be left out, as the OAuth2 password form of the docs page does.
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"grant_type": "password", "password": "x"}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
    ],
)
async def test_token_endpoint_refuses_incomplete_or_unknown_grants(client, form, code):
    response = await client.post("/api/auth/token", data=form)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"username": "x", "password": "y"}'),
        ("text/plain", b"username=x&password=y"),
        (None, b"username=x&password=y"),
    ],
    ids=["json", "text", "none"],
)
async def test_token_endpoint_refuses_a_body_that_is_not_form_encoded_with_415(
    client, accounts, content_type, body
):
    # a JSON body was read as an empty form: "username is required" though one was sent
    user = await accounts.register()
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(
        "/api/auth/token",
        content=body.replace(b"x", user.username.encode()),
        headers=headers,
    )
    received = "no Content-Type" if content_type is None else f"Content-Type {content_type}"
    assert (response.status_code, response.json()) == (
        415,
        {
            "error": {
                "code": "unsupported_media_type",
                "message": f"the body must be form-encoded, sent with Content-Type: {FORM} "
                f"(received {received})",
                "details": {"expected": FORM, "received": content_type},
            }
        },
    )
    # the same credentials form-encoded (any charset parameter) are taken
    response = await client.post(
        "/api/auth/token",
        content=f"username={user.username}&password={PASSWORD}".replace(" ", "+").encode(),
        headers={"Content-Type": f"{FORM}; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


async def test_scope_parameter_narrows_the_token_and_cannot_widen_it(client, accounts):
    user = await accounts.register()
    narrowed = await client.post(
        "/api/auth/login",
        json={"login": user.username, "password": PASSWORD, "scope": "events:write"},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert claims_of(narrowed.json()["access_token"])[1]["scope"] == "events:write"
    widened = await client.post(
        "/api/auth/login",
        json={"login": user.username, "password": PASSWORD, "scope": "events:write users:write"},
    )
    assert widened.status_code == 400
    assert widened.json()["error"]["code"] == "invalid_scope"
    assert widened.json()["error"]["details"] == {"not_granted": ["users:write"]}


async def test_failed_logins_are_throttled_per_account_without_revealing_it_exists(
    client, accounts
):
    user = await accounts.register()
    ghost = unique_name("ghost")
    for login in (user.username, ghost):
        for _ in range(5):
            response = await client.post(
                "/api/auth/login", json={"login": login, "password": "wrong password 123"}
            )
            assert response.status_code == 401
        blocked = await client.post("/api/auth/login", json={"login": login, "password": PASSWORD})
        assert blocked.status_code == 429, blocked.text
        assert blocked.json()["error"]["code"] == "too_many_attempts"
        assert 0 < int(blocked.headers["retry-after"]) <= 900
        assert blocked.json()["error"]["details"]["retry_after_seconds"] == int(
            blocked.headers["retry-after"]
        )
    # Another account is not affected.
    other = await accounts.register()
    response = await client.post(
        "/api/auth/login", json={"login": other.username, "password": PASSWORD}
    )
    assert response.status_code == 200


async def test_a_successful_login_clears_the_account_counter(client, accounts):
    user = await accounts.register()
    wrong = {"login": user.username, "password": "wrong password 123"}
    right = {"login": user.username, "password": PASSWORD}
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    assert (await client.post("/api/auth/login", json=right)).status_code == 200
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    assert (await client.post("/api/auth/login", json=right)).status_code == 200


async def test_failed_logins_are_throttled_per_client_address(make_auth_settings, accounts):
    app = create_app(make_auth_settings(login_max_failures_per_address=3))
    async with LifespanManager(app), asgi_client(app, "192.0.2.77") as attacker:
        for _ in range(3):
            response = await attacker.post(
                "/api/auth/login", json={"login": unique_name(), "password": "wrong password 1"}
            )
            assert response.status_code == 401
        user = await accounts.register()
        right = {"login": user.username, "password": PASSWORD}
        blocked = await attacker.post("/api/auth/login", json=right)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        async with asgi_client(app, "192.0.2.78") as neighbour:
            assert (await neighbour.post("/api/auth/login", json=right)).status_code == 200


async def test_a_bcrypt_hash_verifies_and_is_upgraded_to_argon2id(client, auth_app):
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    assert legacy.startswith("$2b$")
    username = await insert_user(auth_app, legacy)
    first = await client.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert first.status_code == 200, first.text
    stored = await auth_app.state.db.fetchval(
        "SELECT hashed_password FROM users WHERE username = $1", username
    )
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    again = await client.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert again.status_code == 200
    wrong = await client.post("/api/auth/login", json={"login": username, "password": "nope"})
    assert wrong.status_code == 401


async def test_an_argon2_hash_with_weaker_parameters_is_rehashed(client, auth_app):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    username = await insert_user(auth_app, weak)
    response = await client.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    stored = await auth_app.state.db.fetchval(
        "SELECT hashed_password FROM users WHERE username = $1", username
    )
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert stored != weak


async def test_every_answer_carrying_a_credential_says_no_store(client, accounts):
    # RFC 6749 5.1: a token response carries Cache-Control: no-store and Pragma: no-cache, so
    # no browser or proxy cache keeps the tokens (nor an API key shown once).
    operator = await accounts.create("operator")
    login = await client.post(
        "/api/auth/login", json={"login": operator.username, "password": PASSWORD}
    )
    form = await client.post(
        "/api/auth/token", data={"username": operator.username, "password": PASSWORD}
    )
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    key = await client.post("/api/auth/api-keys", json={"name": "k"}, headers=operator.headers)
    exchanged = await client.post(
        "/api/auth/token",
        data={"grant_type": "client_credentials", "client_secret": key.json()["key"]},
    )
    for answer in (login, form, refreshed, key, exchanged):
        assert answer.status_code in (200, 201), answer.text
        assert answer.headers.get("cache-control") == "no-store", answer.request.url
        assert answer.headers.get("pragma") == "no-cache", answer.request.url
