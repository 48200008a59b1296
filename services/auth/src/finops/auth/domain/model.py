"""What auth keeps: users, refresh tokens (in families) and API keys. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from finops.common.auth.scopes import Role


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    email: str
    hashed_password: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    #: the teams its events may name (``finops.auth.domain.teams``); None: any team
    teams: frozenset[str] | None = None


@dataclass(frozen=True)
class RefreshToken:
    """One refresh token, stored by hash.

    Every refresh replaces the token with a new one of the same ``family_id`` (one family per
    login). A token that is presented after it was used means that someone holds a copy, so
    the whole family is revoked.
    """

    id: UUID
    family_id: UUID
    user_id: UUID
    token_hash: str
    scope: str
    access_jti: str  # the access token issued with it, so logout can find the family
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    def was_used(self) -> bool:
        return self.used_at is not None


@dataclass(frozen=True)
class ApiKey:
    """A long-lived secret an agent exchanges for short-lived access tokens; stored by hash."""

    id: UUID
    user_id: UUID  # whose identity the key grants
    created_by: UUID | None
    name: str
    prefix: str  # the first characters of the key, to tell keys apart in listings
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str
