"""The small interfaces the use cases need. Postgres and Redis adapters implement them; unit
tests use in-memory fakes."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from finops.auth.domain.model import ApiKey, RefreshToken, User
from finops.auth.domain.rules import AttemptVerdict
from finops.common.auth.scopes import Role


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Raises UsernameTaken / EmailTaken (email compared case-insensitively)."""

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_by_login(self, login: str) -> User | None:
        """By username, or by email (case-insensitive) when ``login`` contains '@'."""

    async def set_password_hash(self, user_id: UUID, hashed_password: str) -> None: ...

    async def set_role(self, user_id: UUID, role: Role) -> User | None: ...

    async def set_active(self, user_id: UUID, active: bool) -> User | None: ...

    async def set_teams(self, user_id: UUID, teams: frozenset[str] | None) -> User | None:
        """Bind the account to ``teams`` (None: unbind it); the account as it is now."""

    async def count_active_admins(self) -> int:
        """Locks the active admins until the transaction ends, so that two concurrent
        demotions or deactivations cannot both see a second admin and leave none."""


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...

    async def claim(self, token_hash: str, now: datetime) -> RefreshToken | None:
        """Atomically mark an unused, unrevoked, unexpired token used and return it."""

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None: ...

    async def lock_family_of(self, token_hash: str) -> UUID | None:
        """The family of the token (None: unknown token), locked until the transaction ends.

        Refreshing and revoking a family take this lock, so they run one after the other: a
        revocation sees every token a refresh wrote, and a refresh sees a revocation.
        """

    async def lock_family(self, family_id: UUID) -> bool:
        """Lock the family as ``lock_family_of`` does; True when it holds any token."""

    async def revoke_family(self, family_id: UUID, now: datetime) -> int: ...

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int: ...

    async def delete_expired(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` tokens that expired before ``before``; how many went."""


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: UUID) -> ApiKey | None: ...

    async def get_by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def list(self, visible_to: UUID | None) -> list[ApiKey]:
        """Keys created by or for ``visible_to``; every key when it is None."""

    async def revoke(self, key_id: UUID, now: datetime) -> None: ...

    async def revoke_all_of_user(self, user_id: UUID, now: datetime) -> int: ...

    async def touch(self, key_id: UUID, now: datetime) -> bool:
        """Record a use; False when the key has been revoked meanwhile (then it is not used)."""


class UnitOfWork(Protocol):
    """One transaction over the repositories; leaving without ``commit()`` rolls back."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class LoginThrottle(Protocol):
    """Counts failed logins per key in a fixed window, and the attempts being judged."""

    async def begin_attempt(self, keys: dict[str, int], attempt_id: str) -> AttemptVerdict:
        """Let the attempt ``attempt_id`` through if, on every key (key -> limit), the
        failures plus the attempts in flight stay under the limit, and count it as in flight,
        atomically: concurrent attempts cannot all pass before any has failed. An attempt
        that never ends stops counting after a while on its own."""

    async def end_attempt(self, keys: list[str], attempt_id: str, *, failed: bool) -> bool:
        """The attempt begun on ``keys`` is judged: no longer in flight; a failure if so.
        False if its lease had lapsed before (or it never held one). Idempotent: ending the
        same attempt again (a call the client sent twice) counts nothing more and answers as
        the first did."""

    async def reset(self, key: str) -> None: ...


class RegistrationThrottle(Protocol):
    """Counts registrations per key (a client) in a fixed window."""

    async def admit(self, key: str, limit: int) -> int:
        """Count one registration on ``key`` if fewer than ``limit`` were counted in its
        window, and answer 0; else count nothing and answer the seconds until the window
        ends. Raises :class:`~finops.common.errors.DependencyUnavailable` when the count can
        be neither read nor written."""

    async def give_back(self, key: str) -> None:
        """Uncount one registration counted on ``key`` that never reached its hash (its
        window unchanged, never below zero)."""


class AccessTokenRevocations(Protocol):
    """The blocklist every service checks: tokens, sessions (``sid``), and groups of tokens."""

    async def revoke(self, jti: str, expires_at: int) -> None: ...

    async def revoke_session(self, session_id: str) -> None:
        """Refuse every access token with this ``sid``, however late it was issued."""

    async def revoke_user(self, user_id: str) -> None:
        """Refuse every access token of this account (``sub``), however late it was issued."""

    async def remember(self, groups: list[str], jti: str, expires_at: int) -> None: ...

    async def revoke_group(self, group: str) -> int: ...
