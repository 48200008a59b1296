"""The API-key use cases: create, list, revoke, and the checks of an exchange.

:class:`~finops.auth.service_layer.auth_service.AuthService` offers them (with its unit of
work, blocklist and clock) and issues the access token an exchange grants.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from finops.auth.domain.credentials import hash_secret, new_api_key
from finops.auth.domain.errors import ApiKeyNotFound, InvalidClient, RoleNotAllowed, UserNotFound
from finops.auth.domain.model import ApiKey, User
from finops.auth.domain.rules import may_act_for
from finops.auth.service_layer.ports import AccessTokenRevocations, UnitOfWork
from finops.common.auth.errors import InvalidToken
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import Role


async def create_api_key(
    uow: UnitOfWork, actor: Principal, name: str, user_id: UUID | None, now: datetime
) -> tuple[ApiKey, str]:
    """The stored key and its only plaintext copy."""
    owner_id = user_id or _as_uuid(actor.sub)
    async with uow:
        owner = await uow.users.get(owner_id)
        if owner is None or not owner.is_active:
            raise UserNotFound()
        if not may_act_for(Role(actor.role), actor.sub, owner.role, str(owner.id)):
            raise RoleNotAllowed()
        plain, key_hash, prefix = new_api_key()
        key = ApiKey(
            id=uuid4(),
            user_id=owner.id,
            created_by=_as_uuid(actor.sub),
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            created_at=now,
        )
        await uow.api_keys.add(key)
        await uow.commit()
    return key, plain


async def list_api_keys(uow: UnitOfWork, actor: Principal) -> list[ApiKey]:
    visible_to = None if actor.role == Role.ADMIN else _as_uuid(actor.sub)
    async with uow:
        return await uow.api_keys.list(visible_to)


async def revoke_api_key(
    uow: UnitOfWork,
    revocations: AccessTokenRevocations,
    actor: Principal,
    key_id: UUID,
    now: datetime,
) -> None:
    """Revoke a key and every access token it was exchanged for. Safe to repeat."""
    async with uow:
        key = await uow.api_keys.get(key_id)
        visible = key is not None and (
            actor.role == Role.ADMIN or actor.sub in {str(key.user_id), str(key.created_by)}
        )
        if key is None or not visible:
            raise ApiKeyNotFound()
        # Tokens exchanged for the key carry its id as sid: this refuses all of them,
        # including one an exchange racing with this deletion issues a moment later.
        await revocations.revoke_session(str(key_id))
        if not key.is_revoked:
            await uow.api_keys.revoke(key_id, now)
            await uow.commit()


async def redeem_api_key(uow: UnitOfWork, api_key: str, now: datetime) -> tuple[ApiKey, User]:
    """The key presented for an exchange and its owner, the key's last use recorded;
    :class:`InvalidClient` if the key, its owner or its maker's right to it is gone."""
    async with uow:
        key = await uow.api_keys.get_by_hash(hash_secret(api_key))
        user = await uow.users.get(key.user_id) if key is not None else None
        if key is None or key.is_revoked or user is None or not user.is_active:
            raise InvalidClient()
        if not await _maker_may_still_grant(uow, key, user):
            raise InvalidClient(
                "the API key was made by an account that may no longer make keys for"
                " this account's role"
            )
        if not await uow.api_keys.touch(key.id, now):
            raise InvalidClient()  # revoked since it was read
        await uow.commit()
    return key, user


async def _maker_may_still_grant(uow: UnitOfWork, key: ApiKey, owner: User) -> bool:
    """Whether the account that made ``key`` for ``owner`` may still make it, roles as now.

    A key grants its owner's current role, and its maker saw it once: an operator's key for
    an agent must not become an admin's key when the agent is promoted (the operator would
    hold an admin's credential), nor outlive its maker's own demotion. A key made by its
    owner, or by an account since gone, grants the owner's role as it always did.
    """
    if key.created_by is None or key.created_by == owner.id:
        return True
    maker = await uow.users.get(key.created_by)
    if maker is None:
        return True
    return may_act_for(maker.role, str(maker.id), owner.role, str(owner.id))


def _as_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidToken("the access token's subject is not a user id") from None
