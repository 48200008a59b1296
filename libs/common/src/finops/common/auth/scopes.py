"""Roles and the scopes each one grants: the one table every service checks against.

A token carries its scopes (claim ``scope``, space-separated), so services check scopes,
never roles. Roles are ordered: each one grants everything the one below it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    OPERATOR = "operator"
    ADMIN = "admin"


# Scope names, spelled once.
EVENTS_WRITE = "events:write"
EVENTS_WRITE_ANY = "events:write:any"  # write events on behalf of any agent, not only oneself
RECOMMENDATIONS_READ = "recommendations:read"
HEALING_READ = "healing:read"
EXPERIMENTS_ASSIGN = "experiments:assign"
EXPERIMENTS_WRITE = "experiments:write"
STATS_READ = "stats:read"
OPTIMIZER_WRITE = "optimizer:write"  # catalog, objectives and budgets of the optimizer
API_KEYS_WRITE = "api-keys:write"
USERS_WRITE = "users:write"

_AGENT = frozenset({EVENTS_WRITE, RECOMMENDATIONS_READ, HEALING_READ, EXPERIMENTS_ASSIGN})
_OPERATOR = _AGENT | {STATS_READ, EXPERIMENTS_WRITE, API_KEYS_WRITE, OPTIMIZER_WRITE}
_ADMIN = _OPERATOR | {USERS_WRITE, EVENTS_WRITE_ANY}

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.AGENT: _AGENT,
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(_ADMIN),
}
ALL_SCOPES: frozenset[str] = ROLE_SCOPES[Role.ADMIN]
ROLE_RANK: dict[Role, int] = {Role.AGENT: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def scopes_for(role: str) -> frozenset[str]:
    """The scopes a role grants; an unknown role grants nothing."""
    try:
        return ROLE_SCOPES[Role(role)]
    except ValueError:
        return frozenset()


def format_scope(scopes: Iterable[str]) -> str:
    """The ``scope`` claim: sorted so equal scope sets give equal tokens."""
    return " ".join(sorted(set(scopes)))


def parse_scope(claim: str) -> frozenset[str]:
    return frozenset(claim.split())
