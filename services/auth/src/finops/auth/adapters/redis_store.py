"""Redis adapters: failed-login counters and access-token revocation (blocklist + groups)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from finops.common.auth.blocklist import blocklist_key, revoke, revoke_session, revoke_subject

LOGIN_FAILURES_PREFIX = "finops:auth:login-failures:"
LOGIN_PENDING_PREFIX = "finops:auth:login-pending:"
#: Retry-After of a login refused because attempts in flight fill the budget, not failures.
BUSY_RETRY_AFTER_SECONDS = 1
REVOCATION_GROUP_PREFIX = "finops:auth:token-group:"


# An attempt is let through only if, on every key, the failures counted plus the attempts
# still being judged stay under the limit; it is then counted as pending, in the same atomic
# step, so concurrent guesses cannot all pass the limit before any of them has failed.
# KEYS: failures and pending counters, in pairs. ARGV[1]: the window (s); ARGV[2]: how long a
# pending count outlives an attempt that never finished (a process that died); ARGV[i + 2]:
# the limit of the i-th pair. Returns the seconds until the longest window of a key at its
# limit ends, -1 when only attempts in flight fill the budget, 0 when the attempt goes on.
_BEGIN_ATTEMPT = """
local wait, busy = 0, false
for i = 1, #KEYS, 2 do
  local limit = tonumber(ARGV[(i + 1) / 2 + 2])
  local failures = tonumber(redis.call('GET', KEYS[i]) or '0')
  if failures >= limit then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl <= 0 then ttl = tonumber(ARGV[1]) end
    if ttl > wait then wait = ttl end
  elseif failures + tonumber(redis.call('GET', KEYS[i + 1]) or '0') >= limit then
    busy = true
  end
end
if wait > 0 then return wait end
if busy then return -1 end
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
end
return 0
"""

# Ends an attempt: its pending count is given back and, when ARGV[1] is "1", a failure is
# counted (the first failure opens the window of ARGV[2] seconds).
_END_ATTEMPT = """
for i = 1, #KEYS, 2 do
  if tonumber(redis.call('GET', KEYS[i + 1]) or '0') > 0 then redis.call('DECR', KEYS[i + 1]) end
  if ARGV[1] == '1' then
    redis.call('SET', KEYS[i], 0, 'EX', ARGV[2], 'NX')
    redis.call('INCR', KEYS[i])
  end
end
return 0
"""

#: Seconds a pending count survives an attempt that never ended (the argon2 check of one
#: attempt takes tens of milliseconds).
PENDING_TTL_SECONDS = 60


class RedisLoginThrottle:
    """Fixed-window failure counters (the window starts at the first failure and lasts its
    TTL), plus the attempts being judged, so that failures and attempts in flight together
    never exceed the limit: a burst of concurrent guesses gets no more tries than it."""

    def __init__(self, redis: Any, window_seconds: int) -> None:
        self._redis = redis
        self.window_seconds = window_seconds
        self._begin = redis.register_script(_BEGIN_ATTEMPT)
        self._end = redis.register_script(_END_ATTEMPT)

    @staticmethod
    def _keys(names: list[str]) -> list[str]:
        return [
            key
            for name in names
            for key in (LOGIN_FAILURES_PREFIX + name, LOGIN_PENDING_PREFIX + name)
        ]

    async def begin_attempt(self, keys: dict[str, int]) -> int:
        names = list(keys)
        answer = await self._begin(
            keys=self._keys(names),
            args=[self.window_seconds, PENDING_TTL_SECONDS, *(keys[name] for name in names)],
        )
        return BUSY_RETRY_AFTER_SECONDS if int(answer) < 0 else int(answer)

    async def end_attempt(self, keys: list[str], *, failed: bool) -> None:
        await self._end(keys=self._keys(keys), args=["1" if failed else "0", self.window_seconds])

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
