"""The Redis blocklist every verifier checks: revoked tokens, sessions and accounts.

A token is refused when any of these entries exists:

- its ``jti`` (one token: logout);
- its ``sid``, the session it belongs to (a login's refresh-token family, or the API key it
  was exchanged for): logout, refresh-token reuse and deleting an API key revoke the session,
  so a token the session issues even a moment after the revocation is refused as well;
- its ``sub``, the account (deactivation).

An entry lives as long as a token it revokes could still be presented, so the blocklist never
grows past the set of live tokens.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from finops.common.auth.principal import Principal

BLOCKLIST_PREFIX = "finops:auth:revoked:"
SESSION_BLOCKLIST_PREFIX = "finops:auth:revoked-session:"
SUBJECT_BLOCKLIST_PREFIX = "finops:auth:revoked-subject:"


def blocklist_redis(
    redis_url: str,
    *,
    max_connections: int = 64,
    wait_seconds: float = 1.0,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
) -> aioredis.Redis:
    """A Redis client whose pool waits for a free connection instead of failing.

    redis-py's default pool raises "Too many connections" past 100 concurrent commands, which
    under load would turn into 503s on every service; a blocking pool queues them instead.
    Every wait is bounded, so a Redis that is down or frozen fails a command within seconds
    (services pass their settings' timeouts through ``finops.common.datastores.redis_client``).
    A command that finds its pooled connection closed (Redis restarted, or the link dropped)
    is sent once more on a new one, so no request fails for a connection that died while idle;
    a timeout is not retried, which would only double the wait on a frozen server.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=max_connections,
        timeout=wait_seconds,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)


def blocklist_key(jti: str) -> str:
    return f"{BLOCKLIST_PREFIX}{jti}"


def session_blocklist_key(session_id: str) -> str:
    return f"{SESSION_BLOCKLIST_PREFIX}{session_id}"


def subject_blocklist_key(subject: str) -> str:
    return f"{SUBJECT_BLOCKLIST_PREFIX}{subject}"


def revocation_keys(principal: Principal) -> list[str]:
    """The blocklist entries any one of which refuses this token."""
    keys = [blocklist_key(principal.jti), subject_blocklist_key(principal.sub)]
    if principal.session_id is not None:
        keys.append(session_blocklist_key(principal.session_id))
    return keys


async def _set(redis: Any, key: str, ttl_seconds: int | float) -> bool:
    if ttl_seconds <= 0:
        return False
    # Round up: a token must not outlive its blocklist entry by a fraction of a second.
    await redis.set(key, b"1", ex=math.ceil(ttl_seconds))
    return True


async def revoke(redis: Any, jti: str, ttl_seconds: int | float) -> bool:
    """Blocklist ``jti`` for ``ttl_seconds``; False when the token has already expired."""
    return await _set(redis, blocklist_key(jti), ttl_seconds)


async def revoke_session(redis: Any, session_id: str, ttl_seconds: int | float) -> bool:
    """Refuse every token of the session for ``ttl_seconds`` (the longest token lifetime)."""
    return await _set(redis, session_blocklist_key(session_id), ttl_seconds)


async def revoke_subject(redis: Any, subject: str, ttl_seconds: int | float) -> bool:
    """Refuse every token of the account for ``ttl_seconds`` (the longest token lifetime)."""
    return await _set(redis, subject_blocklist_key(subject), ttl_seconds)


async def is_revoked(redis: Any, jti: str) -> bool:
    return bool(await redis.exists(blocklist_key(jti)))


class BlocklistLookups:
    """Answers "is any of these entries on the blocklist?", sending the questions asked within
    one event-loop turn to Redis as a single MGET.

    Under load many requests reach the blocklist check in the same turn; one round trip for
    all of them instead of one each is most of what the check costs a busy service.
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._waiting: list[tuple[Sequence[str], asyncio.Future[bool]]] = []
        self._lookups: set[asyncio.Task[None]] = set()  # strong references while they run

    async def is_revoked(self, keys: Sequence[str]) -> bool:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((keys, answer))
        # shield: a cancelled request must not cancel the lookup others wait for too.
        return await asyncio.shield(answer)

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._lookup(batch))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _lookup(self, batch: list[tuple[Sequence[str], asyncio.Future[bool]]]) -> None:
        names = list(dict.fromkeys(key for keys, _ in batch for key in keys))
        try:
            values = await self._redis.mget(names)
        except BaseException as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        present = {name for name, value in zip(names, values, strict=True) if value is not None}
        for keys, answer in batch:
            if not answer.done():
                answer.set_result(any(key in present for key in keys))
