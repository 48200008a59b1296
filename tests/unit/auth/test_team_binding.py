"""The teams an admin binds an account to: the names' rules (those of an event's team)."""

from __future__ import annotations

import pytest

from finops.auth.domain.errors import TeamsInvalid
from finops.auth.domain.teams import MAX_TEAMS, TEAM_MAX_CHARS, team_binding
from finops.common.events.schemas.call_data import CallIdentity


def test_duplicates_are_removed_and_none_unbinds():
    assert team_binding(["finance", "ops", "finance"]) == frozenset({"finance", "ops"})
    assert team_binding([]) == frozenset()
    assert team_binding(None) is None


def test_a_team_name_is_what_an_events_team_may_hold():
    [text, _null] = CallIdentity.model_json_schema()["properties"]["team"]["anyOf"]
    assert (text["minLength"], text["maxLength"]) == (1, TEAM_MAX_CHARS)
    assert team_binding(["x" * TEAM_MAX_CHARS]) == frozenset({"x" * TEAM_MAX_CHARS})


def test_every_bad_name_is_reported_at_once():
    with pytest.raises(TeamsInvalid) as invalid:
        team_binding(["ok", "", "x" * (TEAM_MAX_CHARS + 1), "fin\u202eance", "tab\there", "ok"])
    assert invalid.value.code == "validation_error"
    assert [(p["field"], p["type"]) for p in invalid.value.details] == [
        ("teams.1", "team_length"),
        ("teams.2", "team_length"),
        ("teams.3", "control_character"),
        ("teams.4", "control_character"),
    ]
    assert "U+202E" in invalid.value.details[2]["message"]


def test_at_most_so_many_distinct_teams():
    many = [f"team-{i}" for i in range(MAX_TEAMS)]
    assert len(team_binding(many + many) or ()) == MAX_TEAMS
    with pytest.raises(TeamsInvalid) as invalid:
        team_binding([*many, "one-more"])
    assert [p["field"] for p in invalid.value.details] == ["teams"]
