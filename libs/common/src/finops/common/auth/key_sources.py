"""Where a verifier finds public keys: a fixed JWKS, or auth's JWKS endpoint with a cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from finops.common.auth.tokens import SigningKey, VerificationKey, jwks_document, verification_keys
from finops.common.errors import Unavailable

log = logging.getLogger(__name__)


class KeySource(Protocol):
    """Finds the public key for a ``kid``; None when there is no such key."""

    async def key_for(self, kid: str) -> VerificationKey | None: ...

    async def aclose(self) -> None: ...


class StaticKeys:
    """A JWKS held in memory: for tests, and for auth, which verifies with its own key store."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = verification_keys(jwks)

    @classmethod
    def of(cls, *keys: SigningKey) -> StaticKeys:
        return cls(jwks_document(keys))

    def replace(self, jwks: Mapping[str, Any]) -> None:
        """Swap in a new key set (after a key rotation)."""
        self._keys = verification_keys(jwks)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def key_for(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    async def aclose(self) -> None:
        return None


class JwksFromUrl:
    """Auth's JWKS fetched over HTTP, cached ``cache_seconds``.

    An unknown ``kid`` (auth rotated its key) triggers a refetch, but never more often than
    ``min_refetch_seconds``, so a flood of tokens with made-up kids cannot hammer auth. When a
    refetch fails the keys already known keep working: a short auth outage must not log
    everybody out.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300,
        min_refetch_seconds: float = 5.0,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout_seconds
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many requests went to auth (observability and tests)

    async def key_for(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        # While a fetch is under way, wait for it rather than fail for want of keys.
        if self._may_fetch() or self._lock.locked():
            async with self._lock:
                # Another request may have fetched while this one waited for the lock.
                if self._may_fetch() and (kid not in self._keys or not self._fresh()):
                    await self._fetch()
        key = self._keys.get(kid)
        if key is None and self._fetched_at is None:
            raise Unavailable("the auth service's signing keys cannot be fetched")
        return key

    def _fresh(self) -> bool:
        return self._fetched_at is not None and (
            self._clock() - self._fetched_at < self.cache_seconds
        )

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or (
            self._clock() - self._attempted_at >= self.min_refetch_seconds
        )

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            keys = verification_keys(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("fetching the JWKS failed", extra={"url": self.url, "error": str(exc)})
            return
        if not keys:
            log.warning("the JWKS has no usable RS256 key", extra={"url": self.url})
            return
        self._keys = keys
        self._fetched_at = self._clock()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
