"""PostgreSQL adapters (asyncpg): the unit of work, its repositories and the read views."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import asyncpg

from finops.auth.domain.errors import EmailTaken, UsernameTaken
from finops.auth.domain.model import ApiKey, RefreshToken, User
from finops.common.auth.scopes import Role

# Queries are spelled out in full: no SQL is ever assembled from strings at run time.
_USER_BY_ID = (
    "SELECT id, username, email, hashed_password, role, is_active, created_at, updated_at, teams"
    " FROM users WHERE id = $1"
)
_USER_BY_EMAIL = (
    "SELECT id, username, email, hashed_password, role, is_active, created_at, updated_at, teams"
    " FROM users WHERE lower(email) = lower($1)"
)
_USER_BY_USERNAME = (
    "SELECT id, username, email, hashed_password, role, is_active, created_at, updated_at, teams"
    " FROM users WHERE username = lower($1)"
)
_USERS_PAGE = (
    "SELECT id, username, email, hashed_password, role, is_active, created_at, updated_at, teams"
    " FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
)
_SET_ROLE = (
    "UPDATE users SET role = $2 WHERE id = $1"
    " RETURNING id, username, email, hashed_password, role, is_active, created_at, updated_at,"
    " teams"
)
_SET_ACTIVE = (
    "UPDATE users SET is_active = $2 WHERE id = $1"
    " RETURNING id, username, email, hashed_password, role, is_active, created_at, updated_at,"
    " teams"
)
_SET_TEAMS = (
    "UPDATE users SET teams = $2 WHERE id = $1"
    " RETURNING id, username, email, hashed_password, role, is_active, created_at, updated_at,"
    " teams"
)
# FOR UPDATE: see UserRepository.count_active_admins.
_COUNT_ACTIVE_ADMINS = (
    "SELECT count(*) FROM"
    " (SELECT id FROM users WHERE role = 'admin' AND is_active FOR UPDATE) AS admins"
)
# In batches: one statement never holds many row locks for long.
_DELETE_EXPIRED_REFRESH = (
    "DELETE FROM refresh_tokens WHERE id IN"
    " (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)"
)
_INSERT_REFRESH = (
    "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, scope, access_jti,"
    " issued_at, expires_at, used_at, revoked_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
# One statement: two concurrent refreshes with the same token cannot both win.
_CLAIM_REFRESH = (
    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL"
    " AND revoked_at IS NULL AND expires_at > $2"
    " RETURNING id, family_id, user_id, token_hash, scope, access_jti, issued_at, expires_at,"
    " used_at, revoked_at"
)
# A transaction-scoped advisory lock per refresh-token family (class 7301 = "auth family").
_LOCK_FAMILY = "SELECT pg_advisory_xact_lock(7301, hashtext($1::uuid::text))"
_FAMILY_EXISTS = "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $1)"
_REFRESH_BY_HASH = (
    "SELECT id, family_id, user_id, token_hash, scope, access_jti, issued_at, expires_at,"
    " used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1"
)
_INSERT_API_KEY = (
    "INSERT INTO api_keys (id, user_id, created_by, name, prefix, key_hash, created_at,"
    " last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
_API_KEY_BY_ID = (
    "SELECT id, user_id, created_by, name, prefix, key_hash, created_at, last_used_at,"
    " revoked_at FROM api_keys WHERE id = $1"
)
_API_KEY_BY_HASH = (
    "SELECT id, user_id, created_by, name, prefix, key_hash, created_at, last_used_at,"
    " revoked_at FROM api_keys WHERE key_hash = $1"
)
_API_KEYS_VISIBLE = (
    "SELECT id, user_id, created_by, name, prefix, key_hash, created_at, last_used_at,"
    " revoked_at FROM api_keys WHERE $1::uuid IS NULL OR user_id = $1 OR created_by = $1"
    " ORDER BY created_at, id"
)
# Unique constraints of the migrations, mapped to the error a client sees.
_DUPLICATE_ERRORS = {"users_username_key": UsernameTaken, "users_email_lower_key": EmailTaken}


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    teams = row["teams"]
    return User(
        **{
            **dict(row),
            "role": Role(row["role"]),
            "teams": None if teams is None else frozenset(teams),
        }
    )


def _teams_column(teams: frozenset[str] | None) -> list[str] | None:
    """The ``teams`` column's value: the names sorted, or NULL for an unbound account."""
    return None if teams is None else sorted(teams)


def _affected(status: str) -> int:
    """asyncpg's status string ("UPDATE 3") → 3."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresUsers:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add(self, user: User) -> None:
        try:
            await self._conn.execute(
                "INSERT INTO users (id, username, email, hashed_password, role, is_active, teams)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                user.id,
                user.username,
                user.email,
                user.hashed_password,
                user.role.value,
                user.is_active,
                _teams_column(user.teams),
            )
        except asyncpg.UniqueViolationError as exc:
            error = _DUPLICATE_ERRORS.get(exc.constraint_name or "")
            if error is None:
                raise
            raise error() from None

    async def get(self, user_id: UUID) -> User | None:
        return _user(await self._conn.fetchrow(_USER_BY_ID, user_id))

    async def get_by_login(self, login: str) -> User | None:
        # Usernames cannot hold '@', so the shape of the login says which column to search.
        query = _USER_BY_EMAIL if "@" in login else _USER_BY_USERNAME
        return _user(await self._conn.fetchrow(query, login))

    async def set_password_hash(self, user_id: UUID, hashed_password: str) -> None:
        await self._conn.execute(
            "UPDATE users SET hashed_password = $2 WHERE id = $1", user_id, hashed_password
        )

    async def set_role(self, user_id: UUID, role: Role) -> User | None:
        return _user(
            await self._conn.fetchrow(
                _SET_ROLE,
                user_id,
                role.value,
            )
        )

    async def set_active(self, user_id: UUID, active: bool) -> User | None:
        return _user(await self._conn.fetchrow(_SET_ACTIVE, user_id, active))

    async def set_teams(self, user_id: UUID, teams: frozenset[str] | None) -> User | None:
        return _user(await self._conn.fetchrow(_SET_TEAMS, user_id, _teams_column(teams)))

    async def count_active_admins(self) -> int:
        return int(await self._conn.fetchval(_COUNT_ACTIVE_ADMINS))


class PostgresRefreshTokens:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add(self, token: RefreshToken) -> None:
        await self._conn.execute(
            _INSERT_REFRESH,
            token.id,
            token.family_id,
            token.user_id,
            token.token_hash,
            token.scope,
            token.access_jti,
            token.issued_at,
            token.expires_at,
            token.used_at,
            token.revoked_at,
        )

    async def claim(self, token_hash: str, now: datetime) -> RefreshToken | None:
        row = await self._conn.fetchrow(_CLAIM_REFRESH, token_hash, now)
        return RefreshToken(**dict(row)) if row else None

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        row = await self._conn.fetchrow(_REFRESH_BY_HASH, token_hash)
        return RefreshToken(**dict(row)) if row else None

    async def lock_family_of(self, token_hash: str) -> UUID | None:
        family: UUID | None = await self._conn.fetchval(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1", token_hash
        )
        if family is not None:
            await self._conn.execute(_LOCK_FAMILY, family)
        return family

    async def lock_family(self, family_id: UUID) -> bool:
        # A lock on the family id, not on rows: a row lock cannot cover the row a concurrent
        # refresh is about to insert, and that row is exactly what a logout must not miss.
        await self._conn.execute(_LOCK_FAMILY, family_id)
        return bool(await self._conn.fetchval(_FAMILY_EXISTS, family_id))

    async def revoke_family(self, family_id: UUID, now: datetime) -> int:
        return _affected(
            await self._conn.execute(
                "UPDATE refresh_tokens SET revoked_at = $2"
                " WHERE family_id = $1 AND revoked_at IS NULL",
                family_id,
                now,
            )
        )

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int:
        return _affected(
            await self._conn.execute(
                "UPDATE refresh_tokens SET revoked_at = $2"
                " WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
                now,
            )
        )

    async def delete_expired(self, before: datetime, limit: int) -> int:
        return _affected(await self._conn.execute(_DELETE_EXPIRED_REFRESH, before, limit))


class PostgresApiKeys:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add(self, key: ApiKey) -> None:
        await self._conn.execute(
            _INSERT_API_KEY,
            key.id,
            key.user_id,
            key.created_by,
            key.name,
            key.prefix,
            key.key_hash,
            key.created_at,
            key.last_used_at,
            key.revoked_at,
        )

    async def get(self, key_id: UUID) -> ApiKey | None:
        row = await self._conn.fetchrow(_API_KEY_BY_ID, key_id)
        return ApiKey(**dict(row)) if row else None

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._conn.fetchrow(_API_KEY_BY_HASH, key_hash)
        return ApiKey(**dict(row)) if row else None

    async def list(self, visible_to: UUID | None) -> list[ApiKey]:
        rows = await self._conn.fetch(_API_KEYS_VISIBLE, visible_to)
        return [ApiKey(**dict(row)) for row in rows]

    async def revoke(self, key_id: UUID, now: datetime) -> None:
        await self._conn.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            key_id,
            now,
        )

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int:
        return _affected(
            await self._conn.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
                now,
            )
        )

    async def touch(self, key_id: UUID, now: datetime) -> bool:
        # The row lock this takes orders the exchange against a concurrent revocation.
        status = await self._conn.execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            key_id,
            now,
        )
        return _affected(status) == 1


class PostgresUnitOfWork:
    """One connection and one transaction; leaving without ``commit()`` rolls back."""

    users: PostgresUsers
    refresh_tokens: PostgresRefreshTokens
    api_keys: PostgresApiKeys

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __aenter__(self) -> Self:
        self._conn = await self._pool.acquire()
        try:
            self._transaction = self._conn.transaction()
            await self._transaction.start()
        except BaseException:
            await self._pool.release(self._conn)
            raise
        self._finished = False
        self.users = PostgresUsers(self._conn)
        self.refresh_tokens = PostgresRefreshTokens(self._conn)
        self.api_keys = PostgresApiKeys(self._conn)
        return self

    async def commit(self) -> None:
        await self._transaction.commit()
        self._finished = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._finished:
                await self._transaction.rollback()
        finally:
            await self._pool.release(self._conn)


class PostgresUserViews:
    """Single-statement reads straight from the pool: no transaction round trips."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def user(self, user_id: UUID) -> User | None:
        return _user(await self._pool.fetchrow(_USER_BY_ID, user_id))

    async def users(self, limit: int, offset: int) -> list[User]:
        """A page of every account, oldest first."""
        rows = await self._pool.fetch(_USERS_PAGE, limit, offset)
        return [user for row in rows if (user := _user(row)) is not None]
