"""Redis adapters: failed-login and registration counters, and access-token revocation
(blocklist + groups)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from finops.auth.domain.rules import AttemptVerdict
from finops.common.auth.blocklist import blocklist_key, revoke, revoke_session, revoke_subject
from finops.common.datastores import is_dependency_failure
from finops.common.errors import DependencyUnavailable

LOGIN_FAILURES_PREFIX = "finops:auth:login-failures:"
#: the leases of the attempts being judged: a sorted set per key, scored by their start
LOGIN_LEASES_PREFIX = "finops:auth:login-leases:"
#: an ended attempt's outcome, kept a lease time so that ending it again counts nothing twice
LOGIN_ENDED_PREFIX = "finops:auth:login-ended:"
#: registrations per client in the current window (a counter whose TTL is the window)
REGISTRATIONS_PREFIX = "finops:auth:registrations:"
REVOCATION_GROUP_PREFIX = "finops:auth:token-group:"
#: How long an attempt counts as in flight at most: the lease of an attempt that never ended
#: (its process died, its answer was lost) lapses then, whatever traffic follows (the argon2
#: check of one attempt takes tens of milliseconds).
ATTEMPT_LEASE_SECONDS = 30


# An attempt goes on only if, on every key, the failures counted plus the attempts still
# being judged stay under the limit; it then takes a lease on each key (a member of a sorted
# set scored by its start), in the same atomic step, so concurrent guesses cannot all pass
# the limit before any of them has failed. Leases older than the lease time are dropped
# first, so a leaked one lapses on its own; an attempt that holds its lease already (a
# retried call) goes on and changes nothing.
# A lease's start and its lapse are read from the Redis server's clock (TIME), not from the
# replica that calls: with each replica's own clock, one whose clock ran ahead by more than
# the lease time dropped the others' leases as lapsed (and let a guess past the limit), and
# one running behind wrote leases the others dropped at once. Redis replicates scripts by
# their effects (the default since 5.0, the only way since 7.0), so TIME is allowed before
# the writes.
# KEYS: failures counter and leases set, in pairs. ARGV[1]: the failure window (s);
# ARGV[2]: the lease time (ms); ARGV[3]: the attempt's id; ARGV[i + 3]: the limit of the
# i-th pair. Returns the seconds until the longest window of a key at its limit ends
# (rounded up, at least 1), -1 when only attempts in flight fill a budget, 0 when the
# attempt goes on.
_BEGIN_ATTEMPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 0 end
local wait, busy = 0, false
for i = 1, #KEYS, 2 do
  local limit = tonumber(ARGV[(i + 1) / 2 + 3])
  local failures = tonumber(redis.call('GET', KEYS[i]) or '0')
  if failures >= limit then
    -- the window's end in whole seconds, rounded up (TTL rounds to the nearest: a client
    -- told 1 s with 1.4 s left came back too early, one with 0.4 s left was told the window)
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[1])  -- a counter with no window
      ttl = tonumber(ARGV[1])
    else
      ttl = math.max(1, math.ceil(ttl / 1000))
    end
    if ttl > wait then wait = ttl end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now - lease)
    if failures + redis.call('ZCARD', KEYS[i + 1]) >= limit then busy = true end
  end
end
if wait > 0 then return wait end
if busy then return -1 end
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i + 1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i + 1], lease)
end
return 0
"""

# Ends an attempt: its leases are given back and, when ARGV[2] is "1", a failure is counted
# (the first failure opens the window of ARGV[3] seconds). Idempotent: the outcome is kept
# under the attempt's id (the last key) for ARGV[4] ms, and a second call for the same attempt
# (the client sending it again after the link dropped with the first one's answer) returns
# it without counting anything. KEYS: failures counter and leases set, in pairs, then the
# attempt's end marker. ARGV[1]: the attempt's id. Returns 1 if the attempt still held its
# lease on every key, 0 if one had lapsed.
_END_ATTEMPT = """
local marker = KEYS[#KEYS]
local ended = redis.call('GET', marker)
if ended then return tonumber(ended) end
local held = 1
for i = 1, #KEYS - 1, 2 do
  if redis.call('ZREM', KEYS[i + 1], ARGV[1]) == 0 then held = 0 end
  if ARGV[2] == '1' then
    redis.call('SET', KEYS[i], 0, 'EX', ARGV[3], 'NX')
    redis.call('INCR', KEYS[i])
  end
end
redis.call('SET', marker, held, 'PX', ARGV[4])
return held
"""


class RedisLoginThrottle:
    """Fixed-window failure counters (the window starts at the first failure and lasts its
    TTL), plus leases on the attempts being judged, so that failures and attempts in flight
    together never exceed the limit: a burst of concurrent guesses gets no more tries than
    it. Leases are timed by the Redis server's clock, so replicas whose clocks differ judge
    each other's leases alike."""

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
            for key in (LOGIN_FAILURES_PREFIX + name, LOGIN_LEASES_PREFIX + name)
        ]

    async def begin_attempt(self, keys: dict[str, int], attempt_id: str) -> AttemptVerdict:
        names = list(keys)
        answer = int(
            await self._begin(
                keys=self._keys(names),
                args=[
                    self.window_seconds,
                    ATTEMPT_LEASE_SECONDS * 1000,
                    attempt_id,
                    *(keys[name] for name in names),
                ],
            )
        )
        if answer < 0:
            return AttemptVerdict(admitted=False)
        return AttemptVerdict(admitted=answer == 0, retry_after_seconds=answer)

    async def end_attempt(self, keys: list[str], attempt_id: str, *, failed: bool) -> bool:
        held = await self._end(
            keys=[*self._keys(keys), LOGIN_ENDED_PREFIX + attempt_id],
            args=[
                attempt_id,
                "1" if failed else "0",
                self.window_seconds,
                ATTEMPT_LEASE_SECONDS * 1000,
            ],
        )
        return bool(held)

    async def reset(self, key: str) -> None:
        await self._redis.delete(LOGIN_FAILURES_PREFIX + key)


# Counts a registration unless the client's window already holds the limit; the first one
# opens the window. KEYS[1]: the counter; ARGV[1]: the limit; ARGV[2]: the window (s).
# Returns 0 when counted, else the seconds until the window ends, rounded up (at least 1).
_ADMIT_REGISTRATION = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])  -- a counter with no window
    return tonumber(ARGV[2])
  end
  ttl = math.max(1, math.ceil(ttl / 1000))  -- rounded up, as for logins
  return ttl
end
redis.call('SET', KEYS[1], 0, 'EX', ARGV[2], 'NX')
redis.call('INCR', KEYS[1])
return 0
"""


# Uncounts one registration, the window unchanged; a counter at zero or gone (its window
# ended) is left as it is. KEYS[1]: the counter.
_GIVE_BACK_REGISTRATION = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisRegistrationThrottle:
    """Fixed-window registration counters, checked and counted in one step, so concurrent
    registrations from one client cannot all pass its limit."""

    def __init__(self, redis: Any, window_seconds: int) -> None:
        self.window_seconds = window_seconds
        self._admit = redis.register_script(_ADMIT_REGISTRATION)
        self._give_back = redis.register_script(_GIVE_BACK_REGISTRATION)

    async def admit(self, key: str, limit: int) -> int:
        try:
            answer = await self._admit(
                keys=[REGISTRATIONS_PREFIX + key], args=[limit, self.window_seconds]
            )
        except Exception as exc:
            # Any Redis failure, an error answer included (READONLY from a replica after a
            # failover, OOM at maxmemory): the registration goes on uncounted, not a 500.
            if isinstance(exc, RedisError) or is_dependency_failure(exc):
                raise DependencyUnavailable(
                    f"Redis failed the registration count: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        return int(answer)

    async def give_back(self, key: str) -> None:
        await self._give_back(keys=[REGISTRATIONS_PREFIX + key])


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
