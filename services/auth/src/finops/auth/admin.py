"""Operator tasks behind the `finops users` and `finops keys` commands (no HTTP involved)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from finops.auth.adapters.keystore import KeyRing, KeyStore
from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.adapters.redis_store import RedisTokenRevocations
from finops.auth.domain.errors import UserNotFound
from finops.auth.domain.model import User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.service_layer.accounts import deactivate_account, register_user
from finops.auth.settings import AccountSettings, AuthSettings
from finops.common.auth import blocklist_redis
from finops.common.auth.scopes import Role


async def create_user(
    settings: AccountSettings,
    username: str,
    email: str,
    password: str,
    role: Role,
    teams: Iterable[str] | None = None,
) -> User:
    """Create a user straight in the database, with the same rules as registration, bound to
    ``teams`` unless they are None (as ``PUT /api/users/{id}/teams`` binds one)."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        hashing = PasswordHashing(settings.argon2)
        uow = PostgresUnitOfWork(pool)
        return await register_user(uow, hashing, username, email, password, role, teams=teams)
    finally:
        await pool.close()


@dataclass(frozen=True)
class Deactivation:
    """A user deactivated; ``already_inactive``: it was inactive before (nothing changed but
    its tokens revoked again)."""

    user: User
    already_inactive: bool


async def deactivate_user(settings: AccountSettings, who: str) -> Deactivation:
    """Deactivate the user named ``who`` (username, email or id), as the admin API does."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    redis = blocklist_redis(settings.redis_url)
    try:
        user_id = _uuid_or_none(who)
        async with PostgresUnitOfWork(pool) as uow:
            user = await (uow.users.get(user_id) if user_id else uow.users.get_by_login(who))
        if user is None:
            raise UserNotFound()
        max_ttl = max(settings.access_token_ttl_seconds, settings.api_key_token_ttl_seconds)
        revocations = RedisTokenRevocations(redis, max_ttl)
        done = await deactivate_account(
            PostgresUnitOfWork(pool), revocations, user.id, datetime.now(UTC)
        )
        return Deactivation(done, already_inactive=not user.is_active)
    finally:
        await redis.aclose()
        await pool.close()


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def signing_key_to_drop(settings: AuthSettings) -> tuple[str, float] | None:
    """The key the next rotation drops, with when it last signed (epoch seconds)."""
    return KeyStore(settings).next_to_drop()


def rotate_signing_keys(settings: AuthSettings) -> KeyRing:
    """New current key; the old current key stays published as the previous one."""
    return KeyStore(settings).rotate()
