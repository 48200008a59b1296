"""Forged, tampered and malformed access tokens: each one a 401 with a Bearer challenge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from auth_helpers import bearer

from finops.common.auth.tokens import TokenSigner, generate_signing_key

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict) -> str:
    return b64(json.dumps(obj).encode())


@pytest.fixture(scope="module")
async def victim(accounts):
    return await accounts.create()


def valid_claims(victim, **changes):
    now = int(time.time())
    claims = {
        "sub": victim.id,
        "username": victim.username,
        "role": "agent",
        "scope": "events:write",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "iss": "finops-auth",
        "aud": "finops",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def assert_refused(client, token: str, message_part: str | None = None) -> None:
    response = await client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"]["code"] == "invalid_token"
    if message_part:
        assert message_part.lower() in response.json()["error"]["message"].lower()


async def test_the_genuine_token_is_accepted(client, victim):
    response = await client.get("/api/users/me", headers=victim.headers)
    assert response.status_code == 200
    assert response.json()["username"] == victim.username


async def test_a_token_the_service_signs_itself_is_accepted(client, auth_app, victim):
    token = auth_app.state.keys.signer().sign_claims(valid_claims(victim))
    assert (await client.get("/api/users/me", headers=bearer(token))).status_code == 200


async def test_missing_and_non_bearer_credentials_are_401(client):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await client.get("/api/users/me", headers=headers)
        assert response.status_code == 401
        # no token: a challenge with no error code (RFC 6750 section 3.1)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 10_000, "ü.ö.ä"],
)
async def test_malformed_tokens_are_401(client, token):
    # Raw latin-1 bytes, as a client may send them; httpx would refuse to encode them itself.
    headers = {"Authorization": f"Bearer {token}".encode("latin-1")}
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_alg_none_is_refused(client, auth_app, victim):
    header = {"alg": "none", "typ": "JWT", "kid": auth_app.state.keys.signer().kid}
    for signature in ("", "e30"):
        await assert_refused(
            client, f"{segment(header)}.{segment(valid_claims(victim))}.{signature}"
        )


async def test_hs256_signed_with_the_public_key_is_refused(client, auth_app, victim):
    signing_key = auth_app.state.keys.ring.current
    header = {"alg": "HS256", "typ": "JWT", "kid": signing_key.kid}
    signing_input = f"{segment(header)}.{segment(valid_claims(victim, role='admin'))}"
    public_forms = [signing_key.public_pem(), signing_key.public_jwk()["n"].encode()]
    for secret in public_forms:
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await assert_refused(client, f"{signing_input}.{b64(mac)}")


async def test_a_tampered_payload_is_refused(client, victim):
    header, payload, signature = victim.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"role": "admin"}, {"scope": "users:write"}, {"sub": str(uuid.uuid4())}):
        forged = segment({**claims, **change})
        await assert_refused(client, f"{header}.{forged}.{signature}", "signature")


async def test_an_unknown_kid_is_refused(client, victim):
    stranger = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
    await assert_refused(client, stranger.sign_claims(valid_claims(victim)), "unknown key")


async def test_a_foreign_key_claiming_our_kid_is_refused(client, auth_app, victim):
    stranger = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
    _, payload, signature = stranger.sign_claims(valid_claims(victim)).split(".")
    ours = segment({"alg": "RS256", "typ": "JWT", "kid": auth_app.state.keys.signer().kid})
    await assert_refused(client, f"{ours}.{payload}.{signature}", "signature")


@pytest.mark.parametrize(
    ("changes", "message_part"),
    [
        # Times relative to when the test runs, not to when pytest collected it.
        ({"nbf": lambda: int(time.time()) + 3600}, "not yet valid"),
        ({"iat": lambda: int(time.time()) + 3600}, "future"),
        ({"exp": lambda: int(time.time()) - 5, "iat": lambda: int(time.time()) - 900}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "evil-issuer"}, "issuer"),
        ({"jti": None}, "jti"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"sub": None}, "sub"),
        ({"scope": None}, "claims"),
        ({"username": 42}, "claims"),
        ({"nbf": "soon"}, None),
        ({"exp": ["list"]}, None),
    ],
)
async def test_signed_tokens_with_unacceptable_claims_are_refused(
    client, auth_app, victim, changes, message_part
):
    changes = {k: v() if callable(v) else v for k, v in changes.items()}
    token = auth_app.state.keys.signer().sign_claims(valid_claims(victim, **changes))
    await assert_refused(client, token, message_part)
