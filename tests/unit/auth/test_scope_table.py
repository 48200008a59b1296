"""The role → scope table every service checks against."""

from __future__ import annotations

from finops.common.auth.scopes import (
    ALL_SCOPES,
    ROLE_SCOPES,
    Role,
    format_scope,
    parse_scope,
    scopes_for,
)

AGENT = {"events:write", "recommendations:read", "healing:read", "experiments:assign"}
OPERATOR = AGENT | {"stats:read", "experiments:write", "api-keys:write", "optimizer:write"}
ADMIN = OPERATOR | {"users:write", "events:write:any"}


def test_each_role_grants_exactly_its_scopes():
    assert ROLE_SCOPES[Role.AGENT] == AGENT
    assert ROLE_SCOPES[Role.OPERATOR] == OPERATOR
    assert ROLE_SCOPES[Role.ADMIN] == ADMIN == ALL_SCOPES


def test_roles_are_ordered_and_unknown_roles_grant_nothing():
    assert ROLE_SCOPES[Role.AGENT] < ROLE_SCOPES[Role.OPERATOR] < ROLE_SCOPES[Role.ADMIN]
    assert scopes_for("operator") == OPERATOR
    assert scopes_for("root") == frozenset()


def test_the_scope_claim_is_sorted_and_round_trips():
    claim = format_scope(["stats:read", "events:write", "events:write"])
    assert claim == "events:write stats:read"
    assert parse_scope(claim) == {"events:write", "stats:read"}
    assert parse_scope("") == frozenset()
