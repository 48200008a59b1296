"""Where a verifier finds public keys: a fixed JWKS, or auth's JWKS endpoint with a cache."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from finops.common.auth.tokens import SigningKey, VerificationKey, jwks_document, verification_keys
from finops.common.errors import DependencyUnavailable

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
    """Auth's JWKS fetched over HTTP, cached ``cache_seconds`` (a few seconds).

    The cache is short so that a key auth stops publishing (a rotation drops the oldest one)
    stops verifying everywhere within seconds. Once the cache is stale, the next request
    refreshes it: it waits for the new key set up to ``stale_wait_seconds`` and answers from
    it; when auth is slow or down it goes on with the keys it knows (a short auth outage must
    not log everybody out) while the refresh finishes in the background.

    An unknown ``kid`` (auth rotated its key) triggers a refetch too. Fetches start at most
    once per ``min_refetch_seconds``, so a flood of tokens with made-up kids cannot hammer
    auth; concurrent requests share one fetch. A kid still unknown while the last fetch failed
    is :class:`DependencyUnavailable` (503), not an unknown key (401): it may be the key auth
    rotated to.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 5.0,
        min_refetch_seconds: float = 5.0,
        stale_wait_seconds: float = 0.5,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.stale_wait_seconds = stale_wait_seconds
        # Built here, at start-up, not at the first fetch: an httpx client loads the CA
        # bundle into an SSL context (40-70 ms of CPU with the GIL held), which stalled
        # every request in flight on the first authenticated one.
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        #: the last fetch that ended brought no keys (auth down, or an unusable answer)
        self._last_fetch_failed = False
        self._attempted_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.fetches = 0  # how many requests went to auth (observability and tests)

    async def key_for(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        refresh = self._start_refresh()
        if refresh is not None:
            if key is None:
                # Unknown kid, or no keys yet: nothing to answer with until auth answers.
                await asyncio.shield(refresh)
            else:
                # Known but stale: the refresh may say the key is gone; don't wait long.
                await asyncio.wait({refresh}, timeout=self.stale_wait_seconds)
        key = self._keys.get(kid)
        if key is None and (self._fetched_at is None or self._last_fetch_failed):
            # Unknown to keys that may be out of date (auth rotated, then did not answer):
            # whether the token is good cannot be told now, which is no reason to refuse it.
            raise DependencyUnavailable("the auth service's signing keys cannot be fetched")
        return key

    async def refreshed(self) -> None:
        """Wait for the refresh under way, if any (a request may have stopped waiting)."""
        if self._refresh is not None:
            await asyncio.shield(self._refresh)

    def _fresh(self) -> bool:
        return self._fetched_at is not None and (
            self._clock() - self._fetched_at < self.cache_seconds
        )

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The refresh under way, else a new one unless the last began too recently."""
        if self._refresh is not None and not self._refresh.done():
            return self._refresh
        if self._attempted_at is not None and (
            self._clock() - self._attempted_at < self.min_refetch_seconds
        ):
            return None
        self._attempted_at = self._clock()
        self._refresh = asyncio.get_running_loop().create_task(self._fetch())
        return self._refresh

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            keys = verification_keys(response.json())
        except Exception as exc:  # whatever went wrong, the keys already known stay in use
            log.warning("fetching the JWKS failed", extra={"url": self.url, "error": str(exc)})
            self._last_fetch_failed = True
            return
        if not keys:
            log.warning("the JWKS has no usable RS256 key", extra={"url": self.url})
            self._last_fetch_failed = True
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self._last_fetch_failed = False

    async def aclose(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self._owns_client:
            await self._client.aclose()
