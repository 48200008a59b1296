"""Accounts: create (checked, hashed, stored), deactivate, and the last-admin rule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from finops.auth.domain.errors import LastAdmin, UserNotFound
from finops.auth.domain.model import User
from finops.auth.domain.passwords import PasswordHashing
from finops.auth.domain.policy import NewAccount, check_new_account
from finops.auth.domain.teams import team_binding
from finops.auth.service_layer.ports import AccessTokenRevocations, UnitOfWork
from finops.common.auth.scopes import Role


def utcnow() -> datetime:
    return datetime.now(UTC)


async def register_user(
    uow: UnitOfWork,
    hashing: PasswordHashing,
    username: str,
    email: str,
    password: str,
    role: Role = Role.AGENT,
    *,
    teams: Iterable[str] | None = None,
    now: datetime | None = None,
) -> User:
    """Create an account (`finops users create`; the API's registration is
    :meth:`AuthService.register`, throttled), bound to ``teams`` unless they are None."""
    account = check_new_account(username, email, password)
    binding = team_binding(teams)
    hashed = await asyncio.to_thread(hashing.hash, password)
    return await store_new_user(uow, account, hashed, role, teams=binding, now=now)


async def store_new_user(
    uow: UnitOfWork,
    account: NewAccount,
    hashed: str,
    role: Role,
    *,
    teams: frozenset[str] | None = None,
    now: datetime | None = None,
) -> User:
    """Store a checked account with its password hash (and its checked teams, if bound)."""
    now = now or utcnow()
    user = User(uuid4(), account.username, account.email, hashed, role, True, now, now, teams=teams)
    async with uow:
        await uow.users.add(user)
        stored = await uow.users.get(user.id)
        await uow.commit()
    assert stored is not None
    return stored


async def deactivate_account(
    uow: UnitOfWork, revocations: AccessTokenRevocations, user_id: UUID, now: datetime
) -> User:
    """Refuse every credential of the account at once, on every service: its access tokens
    (the blocklist entry for its ``sub``), refresh tokens, API keys and password. Safe to
    repeat. The API's deactivation and `finops users deactivate` both use this."""
    async with uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFound()
        if await is_last_active_admin(uow, user):
            raise LastAdmin("the last active admin cannot be deactivated")
        # Before the commit: a token issued by a login racing with this one is refused too.
        await revocations.revoke_user(str(user_id))
        updated = await uow.users.set_active(user_id, False)
        await uow.refresh_tokens.revoke_all_of_user(user_id, now)
        await uow.api_keys.revoke_all_of_user(user_id, now)
        await uow.commit()
    assert updated is not None
    return updated


async def is_last_active_admin(uow: UnitOfWork, user: User) -> bool:
    active_admin = user.role == Role.ADMIN and user.is_active
    return active_admin and await uow.users.count_active_admins() <= 1
