"""Access tokens: RS256 JWTs with a ``kid``. The only module of the platform that imports jose.

Everything else signs through :class:`TokenSigner` and verifies through :func:`decode`, so the
rules live in one place: verification always names the algorithm list, the audience and the
issuer, and requires ``exp``, ``iat``, ``jti``, ``sub``, ``aud`` and ``iss``. Parsed keys are
kept as jose key objects so a verification costs one RSA check, not a PEM/JWK parse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from jose.exceptions import JOSEError

from finops.common.auth.errors import InvalidToken
from finops.common.auth.scopes import format_scope

ALGORITHM = "RS256"
ALGORITHMS = [ALGORITHM]  # never taken from the token header
# ``aud`` and ``iss`` too: jose checks the audience only when the token has one, so a token
# without ``aud`` would pass for every audience.
REQUIRED_CLAIMS = ("exp", "iat", "jti", "sub", "aud", "iss")
DEFAULT_TTL_SECONDS = 15 * 60
# How far ahead of the verifier's clock a token's ``iat`` may be: clocks of two hosts differ a
# little, but a token "issued" further in the future was not issued by a sane auth service.
ISSUED_AT_SKEW_SECONDS = 10
RSA_KEY_BITS = 2048

_DECODE_OPTIONS = {
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_jti": True,
    "verify_sub": True,
    **{f"require_{claim}": True for claim in REQUIRED_CLAIMS},
}


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_numbers_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint: a kid that is derived from the key, so nothing has to store it."""
    members = _public_numbers_jwk(public_key)
    canonical = json.dumps(
        {"e": members["e"], "kty": "RSA", "n": members["n"]}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key with its key id."""

    kid: str
    private_pem: bytes = field(repr=False)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SigningKey:
        """Load a PEM private key; raises ValueError when it is not an RSA private key."""
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a usable PEM private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key must be an RSA private key (RS256)")
        if key.key_size < RSA_KEY_BITS:
            raise ValueError(f"the signing key must have at least {RSA_KEY_BITS} bits")
        return cls(kid=jwk_thumbprint(key.public_key()), private_pem=data)

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK, ready for a JWKS document."""
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return {
            **_public_numbers_jwk(key.public_key()),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def public_pem(self) -> bytes:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def generate_signing_key(bits: int = RSA_KEY_BITS) -> SigningKey:
    """A fresh RSA key pair (for the local stack, key rotation and tests)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(kid=jwk_thumbprint(key.public_key()), private_pem=pem)


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """``{"keys": [...]}`` with the public half of each key, duplicates removed."""
    seen: dict[str, dict[str, str]] = {}
    for key in keys:
        seen.setdefault(key.kid, key.public_jwk())
    return {"keys": list(seen.values())}


@dataclass(frozen=True)
class VerificationKey:
    """A public key parsed once, ready for many verifications."""

    kid: str
    _jose_key: Any = field(repr=False, compare=False)


def verification_keys(jwks: Mapping[str, Any]) -> dict[str, VerificationKey]:
    """Parse a JWKS document; entries that are not RS256 signing keys with a kid are skipped."""
    out: dict[str, VerificationKey] = {}
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
        ):
            continue
        try:
            out[kid] = VerificationKey(kid, jwk.construct(dict(entry), ALGORITHM))
        except (JOSEError, ValueError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    jti: str
    issued_at: int
    expires_at: int

    @property
    def expires_in(self) -> int:
        return self.expires_at - self.issued_at


class TokenSigner:
    """Issues access tokens signed with one key."""

    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._jose_key = jwk.construct(key.private_pem, ALGORITHM)

    @property
    def kid(self) -> str:
        return self.key.kid

    def issue(
        self,
        *,
        subject: str,
        username: str,
        role: str,
        scopes: Iterable[str],
        ttl_seconds: int | None = None,
        session_id: str | None = None,
        teams: Iterable[str] | None = None,
    ) -> IssuedToken:
        """A signed access token; ``session_id`` becomes the ``sid`` claim that revoking the
        session (logout, deleting an API key) refuses everywhere; ``teams``, the teams a bound
        account may name (None: unbound), the ``teams`` claim (a sorted list; absent when
        unbound)."""
        now = int(self._clock())
        expires_at = now + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds)
        jti = uuid.uuid4().hex
        claims = {
            "sub": subject,
            "username": username,
            "role": role,
            "scope": format_scope(scopes),
            "iat": now,
            "exp": expires_at,
            "jti": jti,
            "iss": self.issuer,
            "aud": self.audience,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if teams is not None:
            claims["teams"] = sorted(teams)
        return IssuedToken(self.sign_claims(claims), jti, now, expires_at)

    def sign_claims(self, claims: Mapping[str, Any]) -> str:
        """Sign arbitrary claims with this key and its kid (tests use it to craft tokens)."""
        return str(
            jwt.encode(dict(claims), self._jose_key, algorithm=ALGORITHM, headers={"kid": self.kid})
        )


#: the prefixes of auth's opaque secrets (``finops.auth.domain.credentials``), and what to do
#: with one sent where an access token belongs
API_KEY_PREFIX = "fo_ak_"
REFRESH_PREFIX = "fo_rt_"
NOT_AN_ACCESS_TOKEN = {
    REFRESH_PREFIX: "this is a refresh token, not an access token: exchange it for an access "
    "token at auth's POST /api/auth/refresh",
    API_KEY_PREFIX: "this is an API key, not an access token: exchange it for an access token "
    "at auth's POST /api/auth/token (grant_type=client_credentials)",
}


def malformed(token: str) -> InvalidToken:
    """The error for a token that is not a JWS, saying what it is when it is a refresh token or
    an API key (both were only "the access token is malformed")."""
    for prefix, hint in NOT_AN_ACCESS_TOKEN.items():
        if token.startswith(prefix):
            return InvalidToken(hint)
    return InvalidToken("the access token is malformed")


def unverified_kid(token: str) -> str:
    """The ``kid`` of a token's header, read before the signature is checked (to pick a key).

    Only the header is decoded here (jose would parse the whole token, and ``decode`` parses
    it again); everything in it is checked again by jose once the key is known.
    """
    header_segment, dots = token.partition(".")[0], token.count(".")
    try:
        if dots != 2:
            raise ValueError("a JWS has three segments")
        raw = base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4))
        header = json.loads(raw)
    except (ValueError, TypeError, UnicodeError):  # binascii.Error is a ValueError
        raise malformed(token) from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("the access token names no signing key (kid)")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"the access token must be signed with {ALGORITHM}")
    return kid


def decode(
    token: str,
    key: VerificationKey,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int = 0,
) -> dict[str, Any]:
    """Verify signature and registered claims; return the claims or raise InvalidToken."""
    try:
        claims = jwt.decode(
            token,
            key._jose_key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={**_DECODE_OPTIONS, "leeway": leeway_seconds},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired") from None
    except jwt.JWTClaimsError as exc:
        raise InvalidToken(f"the access token's claims are not acceptable: {exc}") from None
    except JOSEError as exc:
        # jose's messages are fixed texts ("Signature verification failed.", "missing
        # required key ..."), never echoes of the token, so they are safe to pass on.
        raise InvalidToken(f"the access token is invalid: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeError):
        # jose lets a few type errors out for odd claim values; all of them mean "invalid".
        raise InvalidToken("the access token's format is invalid") from None
    if not isinstance(claims, dict):
        raise InvalidToken("the access token's payload is not an object")
    _check_issued_at(claims.get("iat"), leeway_seconds)
    return claims


def _check_issued_at(issued_at: Any, leeway_seconds: int) -> None:
    """jose only checks that ``iat`` reads as an integer; a time in the future is refused here."""
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        raise InvalidToken("the access token's iat must be a number")
    if issued_at > time.time() + max(leeway_seconds, ISSUED_AT_SKEW_SECONDS):
        raise InvalidToken("the access token's iat is in the future")
