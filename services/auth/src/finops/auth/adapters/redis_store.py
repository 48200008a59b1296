"""Redis adapters: failed-login counters and access-token revocation (blocklist + groups)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from finops.common.auth.blocklist import blocklist_key, revoke, revoke_session, revoke_subject

LOGIN_FAILURES_PREFIX = "finops:auth:login-failures:"
REVOCATION_GROUP_PREFIX = "finops:auth:token-group:"


class RedisLoginThrottle:
    """Fixed-window counters: the window starts at the first failure and lasts its TTL."""

    def __init__(self, redis: Any, window_seconds: int) -> None:
        self._redis = redis
        self.window_seconds = window_seconds

    async def retry_after(self, keys: dict[str, int]) -> int:
        names = list(keys)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(LOGIN_FAILURES_PREFIX + name)
                pipe.ttl(LOGIN_FAILURES_PREFIX + name)
            results = await pipe.execute()
        wait = 0
        for index, name in enumerate(names):
            count, ttl = results[2 * index], results[2 * index + 1]
            if count is not None and int(count) >= keys[name]:
                wait = max(wait, ttl if ttl and ttl > 0 else self.window_seconds)
        return wait

    async def record_failure(self, keys: list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for name in keys:
                # SET NX EX then INCR: the first failure opens the window, INCR keeps its TTL.
                pipe.set(LOGIN_FAILURES_PREFIX + name, 0, ex=self.window_seconds, nx=True)
                pipe.incr(LOGIN_FAILURES_PREFIX + name)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self._redis.delete(LOGIN_FAILURES_PREFIX + key)


class RedisTokenRevocations:
    """Blocklist entries (shared with every service's verifier) and groups of live tokens.

    A session (``sid``) or account (``sub``) entry refuses every token carrying it, so it
    outlives the longest token lifetime (plus a minute for a token being issued while it is
    written). A group (a user's tokens) is a sorted set of jti scored by expiry, so revoking
    the group blocklists exactly the tokens of it that are still alive.
    """

    def __init__(
        self, redis: Any, max_token_ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._entry_ttl = max_token_ttl_seconds + 60
        self._clock = clock

    async def revoke(self, jti: str, expires_at: int) -> None:
        await revoke(self._redis, jti, expires_at - self._clock())

    async def revoke_session(self, session_id: str) -> None:
        await revoke_session(self._redis, session_id, self._entry_ttl)

    async def revoke_user(self, user_id: str) -> None:
        await revoke_subject(self._redis, user_id, self._entry_ttl)

    async def remember(self, groups: list[str], jti: str, expires_at: int) -> None:
        now = self._clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                key = REVOCATION_GROUP_PREFIX + group
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {jti: expires_at})
                pipe.expire(key, self._entry_ttl)
            await pipe.execute()

    async def revoke_group(self, group: str) -> int:
        key = REVOCATION_GROUP_PREFIX + group
        now = self._clock()
        live = await self._redis.zrangebyscore(key, now, "+inf", withscores=True)
        async with self._redis.pipeline(transaction=True) as pipe:
            for jti, expires_at in live:
                name = jti.decode() if isinstance(jti, bytes) else jti
                pipe.set(blocklist_key(name), b"1", ex=max(1, math.ceil(expires_at - now)))
            pipe.delete(key)
            await pipe.execute()
        return len(live)
