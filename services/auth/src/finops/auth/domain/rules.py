"""Who may get which scopes, whose API keys an actor may manage, how logins are throttled."""

from __future__ import annotations

import hashlib

from finops.auth.domain.errors import InvalidScope
from finops.common.auth.scopes import ROLE_RANK, Role, parse_scope, scopes_for


def granted_scopes(role: Role, requested: str | None) -> frozenset[str]:
    """Every scope of the role, or the requested subset of it (OAuth2 ``scope`` parameter)."""
    allowed = scopes_for(role)
    if not requested or not requested.strip():
        return allowed
    wanted = parse_scope(requested)
    if not wanted <= allowed:
        raise InvalidScope(details={"not_granted": sorted(wanted - allowed)})
    return wanted


def may_act_for(actor_role: Role, actor_id: str, owner_role: Role, owner_id: str) -> bool:
    """An actor manages keys for itself and for roles below its own; an admin for anyone.

    An operator must not mint a key for an admin account: that key would be an admin token.
    """
    return (
        actor_id == owner_id
        or actor_role == Role.ADMIN
        or ROLE_RANK[owner_role] < ROLE_RANK[actor_role]
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def account_throttle_key(login: str) -> str:
    """Keyed on what was typed, not on a user id, so unknown accounts throttle identically."""
    return f"account:{_digest(login.strip().casefold())}"


def address_throttle_key(client_address: str) -> str:
    return f"address:{_digest(client_address)}"


def user_group(user_id: object) -> str:
    return f"user:{user_id}"
