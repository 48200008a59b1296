"""Operator tasks behind the `finops users` and `finops keys` commands (no HTTP involved)."""

from __future__ import annotations

import asyncpg

from finops.auth.adapters.keystore import KeyRing, KeyStore
from finops.auth.adapters.postgres import PostgresUnitOfWork
from finops.auth.domain.model import User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.service_layer.auth_service import register_user
from finops.auth.settings import AuthSettings
from finops.common.auth.scopes import Role


async def create_user(
    settings: AuthSettings, username: str, email: str, password: str, role: Role
) -> User:
    """Create a user straight in the database, with the same rules as registration."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        hashing = PasswordHashing(settings.argon2)
        uow = PostgresUnitOfWork(pool)
        return await register_user(uow, hashing, username, email, password, role)
    finally:
        await pool.close()


def rotate_signing_keys(settings: AuthSettings) -> KeyRing:
    """New current key; the old current key stays published as the previous one."""
    store = KeyStore(settings)
    store.load()  # so that a first rotation has a previous key to keep
    return store.rotate()
