"""TokenSigner / TokenVerifier: claims, the attacks they refuse, the blocklist, speed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from auth_fakes import FakeRedis

from finops.common.auth import (
    InvalidToken,
    Principal,
    StaticKeys,
    TokenRevoked,
    TokenSigner,
    TokenVerifier,
    blocklist_key,
    generate_signing_key,
    revoke,
    revoke_session,
    revoke_subject,
)
from finops.common.auth.tokens import SigningKey, jwk_thumbprint
from finops.common.errors import Unavailable
from finops.common.settings import CommonSettings

SETTINGS = CommonSettings(jwt_issuer="finops-auth", jwt_audience="finops")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture
def signer(key) -> TokenSigner:
    return TokenSigner(key, issuer="finops-auth", audience="finops")


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def verifier(key, redis) -> TokenVerifier:
    return TokenVerifier(SETTINGS, redis, StaticKeys.of(key))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    def load(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    header, payload, _ = token.split(".")
    return load(header), load(payload)


def claims(**changes):
    now = int(time.time())
    base = {"sub": "u1", "username": "alice", "role": "agent", "scope": "events:write"}
    base |= {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    base |= {"iss": "finops-auth", "aud": "finops"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def test_issued_tokens_carry_every_claim_and_verify(signer, verifier, key):
    issued = signer.issue(
        subject="u1", username="alice", role="operator", scopes=["stats:read", "events:write"]
    )
    header, payload = parts(issued.token)
    assert header == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    assert payload["scope"] == "events:write stats:read"
    assert payload["exp"] - payload["iat"] == 900 == issued.expires_in
    assert payload["jti"] == issued.jti and payload["iss"] == "finops-auth"
    principal = await verifier.verify(issued.token)
    assert principal == Principal(
        sub="u1",
        username="alice",
        role="operator",
        scopes=frozenset({"events:write", "stats:read"}),
        jti=issued.jti,
        expires_at=issued.expires_at,
    )
    assert principal.has_scope("stats:read") and not principal.has_scope("users:write")


def test_the_kid_is_the_rfc7638_thumbprint(key):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    public = load_pem_private_key(key.private_pem, None).public_key()
    assert key.kid == jwk_thumbprint(public) == SigningKey.from_pem(key.private_pem).kid
    assert len(key.kid) == 43


def test_weak_or_foreign_keys_are_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(k) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    with pytest.raises(ValueError, match="2048"):
        SigningKey.from_pem(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))  # noqa: S505 (must be refused)
    with pytest.raises(ValueError, match="RSA"):
        SigningKey.from_pem(pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="PEM"):
        SigningKey.from_pem("changeme")


async def test_revoked_tokens_are_refused(signer, verifier, redis):
    issued = signer.issue(subject="u1", username="a", role="agent", scopes=[])
    assert await revoke(redis, issued.jti, issued.expires_at - time.time())
    assert blocklist_key(issued.jti) in redis.values
    with pytest.raises(TokenRevoked):
        await verifier.verify(issued.token)
    # logout stays idempotent: it may verify without the blocklist.
    assert (await verifier.verify(issued.token, check_revoked=False)).jti == issued.jti
    assert not await revoke(redis, "expired-jti", -5)


async def test_revoking_a_session_refuses_its_tokens_even_those_issued_afterwards(
    signer, verifier, redis
):
    before = signer.issue(subject="u1", username="a", role="agent", scopes=[], session_id="s1")
    other = signer.issue(subject="u1", username="a", role="agent", scopes=[], session_id="s2")
    assert (await verifier.verify(before.token)).session_id == "s1"
    assert await revoke_session(redis, "s1", 60)
    after = signer.issue(subject="u1", username="a", role="agent", scopes=[], session_id="s1")
    for token in (before, after):
        with pytest.raises(TokenRevoked):
            await verifier.verify(token.token)
    assert (await verifier.verify(other.token)).jti == other.jti


async def test_revoking_a_subject_refuses_every_token_of_that_account(signer, verifier, redis):
    mine = [
        signer.issue(subject="u1", username="a", role="agent", scopes=[], session_id=sid)
        for sid in ("s1", None)
    ]
    someone_else = signer.issue(subject="u2", username="b", role="agent", scopes=[])
    assert await revoke_subject(redis, "u1", 60)
    for token in mine:
        with pytest.raises(TokenRevoked):
            await verifier.verify(token.token)
    assert (await verifier.verify(someone_else.token)).sub == "u2"


async def test_a_blocklist_that_cannot_answer_fails_closed(signer, verifier, redis):
    redis.down = True
    issued = signer.issue(subject="u1", username="a", role="agent", scopes=[])
    with pytest.raises(Unavailable):
        await verifier.verify(issued.token)


async def test_alg_none_and_hs256_with_the_public_key_are_refused(signer, verifier, key):
    body = b64(json.dumps(claims()).encode())
    none = b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{none}.{body}.")
    hs = b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    mac = hmac.new(key.public_pem(), f"{hs}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="RS256"):
        await verifier.verify(f"{hs}.{body}.{b64(mac)}")


async def test_tampered_unknown_kid_and_foreign_signatures_are_refused(signer, verifier):
    header, _, signature = signer.sign_claims(claims()).split(".")
    forged = b64(json.dumps(claims(role="admin")).encode())
    with pytest.raises(InvalidToken, match="Signature"):
        await verifier.verify(f"{header}.{forged}.{signature}")
    stranger = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(stranger.sign_claims(claims()))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # Times relative to when the test runs, not to when pytest collected it.
        ({"nbf": lambda: int(time.time()) + 300}, "not yet valid"),
        ({"exp": lambda: int(time.time()) - 1}, "expired"),
        ({"aud": "other"}, "audience"),
        ({"iss": "other"}, "issuer"),
        # jose checks the audience only when the token names one: a token without ``aud``
        # (or ``iss``) must not pass as one for every audience.
        ({"aud": None}, "aud"),
        ({"iss": None}, "iss"),
        ({"jti": None}, "jti"),
        ({"iat": None}, "iat"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"role": None}, "claims"),
        ({"exp": "later"}, None),
        ({"iat": lambda: int(time.time()) + 3600}, "future"),
        ({"iat": lambda: int(time.time()) + 60}, "future"),
    ],
)
async def test_unacceptable_claims_are_refused(signer, verifier, changes, reason):
    changes = {k: v() if callable(v) else v for k, v in changes.items()}
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(signer.sign_claims(claims(**changes)))


@pytest.mark.parametrize("token", ["", "a", "a.b", "a.b.c", "x" * 9000, "\ud800.x.y"])
async def test_garbage_is_refused(verifier, token):
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_concurrent_blocklist_checks_share_one_redis_round_trip(signer, verifier, redis):
    import asyncio

    issued = [signer.issue(subject="u", username="a", role="agent", scopes=[]) for _ in range(40)]
    revoked = issued[::3]
    for token in revoked:
        await revoke(redis, token.jti, 60)
    results = await asyncio.gather(
        *(verifier.verify(t.token) for t in issued), return_exceptions=True
    )
    assert redis.mget_calls == 1
    assert [isinstance(r, TokenRevoked) for r in results] == [t in revoked for t in issued]
    redis.down = True
    outcomes = await asyncio.gather(
        *(verifier.verify(t.token) for t in issued[:5]), return_exceptions=True
    )
    assert all(isinstance(o, Unavailable) for o in outcomes)


async def test_an_iat_within_the_clock_skew_leeway_is_accepted(signer, verifier):
    token = signer.sign_claims(claims(iat=int(time.time()) + 3))
    assert (await verifier.verify(token)).username == "alice"


async def test_a_remembered_token_is_refused_once_it_expires(signer, verifier, monkeypatch):
    issued = signer.issue(subject="u1", username="alice", role="agent", scopes=["stats:read"])
    principal = await verifier.verify(issued.token)
    assert await verifier.verify(issued.token) == principal  # answered from memory
    later = principal.expires_at + 1
    monkeypatch.setattr("finops.common.auth.verifier.time.time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(issued.token)


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(signer, key, redis):
    keys = StaticKeys.of(key)
    verifier = TokenVerifier(SETTINGS, redis, keys)
    issued = signer.issue(subject="u1", username="alice", role="agent", scopes=["stats:read"])
    assert (await verifier.verify(issued.token)).username == "alice"
    keys.replace({"keys": []})
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(issued.token)


async def test_a_remembered_token_revoked_afterwards_is_refused(signer, verifier, redis):
    issued = signer.issue(subject="u1", username="alice", role="agent", scopes=["stats:read"])
    assert (await verifier.verify(issued.token)).username == "alice"
    await revoke(redis, issued.jti, ttl_seconds=60)
    with pytest.raises(TokenRevoked):
        await verifier.verify(issued.token)


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("fo_rt_4QtrRP6w1Hr5rtLWlBLRiZys", "refresh token, not an access token: exchange it"),
        ("fo_ak_4QtrRP6w1Hr5rtLWlBLRiZys", "API key, not an access token: exchange it"),
        ("abc.def.ghi", "the access token is malformed"),
    ],
)
async def test_a_refresh_token_or_api_key_sent_as_an_access_token_says_what_it_is(
    verifier, secret, says
):
    # a refresh token sent as the bearer token was "the access token is malformed"
    with pytest.raises(InvalidToken, match=says):
        await verifier.verify(secret)
