"""The teams an account is bound to: which events' ``team`` its tokens may claim. Pure.

An account is unbound (``None``: any team, as before binding existed) until an admin binds it
to a set of team names (``PUT /api/users/{id}/teams``, ``finops users create --team``); its
access tokens then carry them as the ``teams`` claim, and ingest and the optimizer refuse a
team outside them (403 ``team_mismatch``). A name is what an event's ``data.team`` holds:
1 to 128 characters, none of them one a name may not hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from finops.auth.domain.errors import TeamsInvalid
from finops.auth.domain.policy import has_forbidden_characters, problem
from finops.common.name_characters import name_refusal, refused_character

#: an event's ``team`` holds at most this many characters (``CallIdentity.team``, an Id128)
TEAM_MAX_CHARS = 128
#: how many distinct teams one account may be bound to
MAX_TEAMS = 32


def team_problems(names: list[str]) -> list[dict[str, Any]]:
    """Every rule ``names`` break, one problem per bad name (field ``teams.<index>``) and one
    for too many distinct names (field ``teams``)."""
    problems = []
    for index, name in enumerate(names):
        field = f"teams.{index}"
        if not 1 <= len(name) <= TEAM_MAX_CHARS:
            message = f"a team name must have 1 to {TEAM_MAX_CHARS} characters"
            problems.append(problem(field, message, "team_length"))
        elif has_forbidden_characters(name):
            message = "a team name must not hold a control character or an unpaired surrogate"
            problems.append(problem(field, message, "control_character"))
        elif (refused := refused_character(name)) is not None:
            problems.append(problem(field, name_refusal(refused), "control_character"))
    if len(set(names)) > MAX_TEAMS:
        message = f"an account may be bound to at most {MAX_TEAMS} distinct teams"
        problems.append(problem("teams", message, "too_many_teams"))
    return problems


def team_binding(names: Iterable[str] | None) -> frozenset[str] | None:
    """The teams to bind an account to, duplicates removed; ``None`` unbinds it.

    An empty list binds the account to no team: its events may then carry none.

    Raises
    ------
    TeamsInvalid
        Listing every problem of :func:`team_problems`.

    Examples
    --------
    >>> sorted(team_binding(["finance", "ops", "finance"]))
    ['finance', 'ops']
    >>> team_binding(None) is None, team_binding([])
    (True, frozenset())
    """
    if names is None:
        return None
    listed = list(names)
    problems = team_problems(listed)
    if problems:
        raise TeamsInvalid(problems)
    return frozenset(listed)
