"""A token's ``teams`` claim: which teams a bound account may name (absent: any team)."""

from __future__ import annotations

import pytest

from finops.common.auth import InvalidToken
from finops.common.auth.principal import Principal
from finops.common.auth.scopes import EVENTS_WRITE_ANY
from finops.common.errors import TeamMismatch

CLAIMS = {
    "sub": "uuid-1",
    "username": "bot1",
    "role": "agent",
    "scope": "events:write",
    "jti": "jti",
    "exp": 0,
}


def test_a_token_without_the_claim_is_an_unbound_account_that_names_any_team():
    principal = Principal.from_claims(CLAIMS)
    assert principal.teams is None
    assert principal.may_claim_team("finance") and principal.may_claim_team(None)
    principal.require_may_claim_team("finance")


def test_a_bound_account_names_only_its_teams_or_none():
    principal = Principal.from_claims({**CLAIMS, "teams": ["ops", "search"]})
    assert principal.teams == frozenset({"ops", "search"})
    assert [principal.may_claim_team(t) for t in ("ops", "search", None, "finance", "")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(TeamMismatch) as refused:
        principal.require_may_claim_team("finance")
    assert refused.value.code == "team_mismatch"
    assert refused.value.details == {
        "field": "team",
        "team": "finance",
        "required_scope": EVENTS_WRITE_ANY,
    }


def test_an_account_bound_to_no_team_names_none():
    principal = Principal.from_claims({**CLAIMS, "teams": []})
    assert principal.teams == frozenset()
    assert principal.may_claim_team(None) and not principal.may_claim_team("ops")


def test_events_write_any_names_any_team_even_when_bound():
    scope = f"events:write {EVENTS_WRITE_ANY}"
    principal = Principal.from_claims({**CLAIMS, "scope": scope, "teams": ["ops"]})
    assert principal.may_claim_team("finance")


@pytest.mark.parametrize("teams", ["finance", [1], None, {"ops": True}, ["ops", None]])
def test_a_teams_claim_that_is_not_a_list_of_names_makes_the_token_invalid(teams):
    with pytest.raises(InvalidToken):
        Principal.from_claims({**CLAIMS, "teams": teams})
