"""Token verification for every service: signature and claims, then the Redis blocklist."""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import RedisError

from finops.common.auth.blocklist import BlocklistLookups, revocation_keys
from finops.common.auth.errors import InvalidToken, TokenRevoked
from finops.common.auth.key_sources import JwksFromUrl, KeySource
from finops.common.auth.principal import Principal
from finops.common.auth.tokens import decode, unverified_kid
from finops.common.errors import DependencyUnavailable
from finops.common.settings import CommonSettings

#: Verified tokens remembered before the verifier starts afresh (one per live session or key).
MAX_REMEMBERED_TOKENS = 10_000


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal` or raises :class:`InvalidToken`.

    Keys come from ``keys`` (default: auth's JWKS at ``settings.auth_url``). The blocklist
    check needs Redis; when Redis cannot answer the verifier fails closed with 503 rather
    than let a possibly revoked token through.

    An agent sends the same token with every call until it expires, so a token whose
    signature and claims checked out is remembered (the RSA check and jose's parsing are most
    of an authenticated request's cost). A remembered token is still refused once it expires
    or its key leaves the key source, and the blocklist is asked every time.
    """

    def __init__(
        self,
        settings: CommonSettings,
        redis: Any,
        keys: KeySource | None = None,
        *,
        leeway_seconds: int = 0,
    ) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.redis = redis
        self._blocklist = BlocklistLookups(redis)
        self.keys: KeySource = keys or JwksFromUrl(
            f"{settings.auth_url.rstrip('/')}/.well-known/jwks.json",
            cache_seconds=settings.jwks_cache_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
        )
        self.leeway_seconds = leeway_seconds
        #: token → (the principal it carries, the kid it was signed with)
        self._verified: dict[str, tuple[Principal, str]] = {}

    async def verify(self, token: str, *, check_revoked: bool = True) -> Principal:
        """Verify ``token``. ``check_revoked=False`` is for logout, which must stay idempotent."""
        principal = await self.verify_signature(token)
        if check_revoked:
            try:
                revoked = await self._blocklist.is_revoked(revocation_keys(principal))
            except (RedisError, OSError) as exc:
                raise DependencyUnavailable("the token blocklist cannot be checked") from exc
            if revoked:
                raise TokenRevoked()
        return principal

    async def verify_signature(self, token: str) -> Principal:
        """Signature and claims only, without the blocklist (benchmarks, offline checks)."""
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise InvalidToken("the access token is malformed")
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, kid = remembered
            if principal.expires_at + self.leeway_seconds < time.time():
                del self._verified[token]
                raise InvalidToken("the access token has expired")
            if await self.keys.key_for(kid) is not None:
                return principal
            del self._verified[token]  # its key was withdrawn: the full check refuses it
        kid = unverified_kid(token)
        key = await self.keys.key_for(kid)
        if key is None:
            raise InvalidToken("the access token is signed with an unknown key")
        claims = decode(
            token,
            key,
            issuer=self.issuer,
            audience=self.audience,
            leeway_seconds=self.leeway_seconds,
        )
        principal = Principal.from_claims(claims)
        if len(self._verified) >= MAX_REMEMBERED_TOKENS:
            self._verified.clear()
        self._verified[token] = (principal, kid)
        return principal

    async def aclose(self) -> None:
        """Close the key source's HTTP client; the Redis client belongs to the caller."""
        await self.keys.aclose()
