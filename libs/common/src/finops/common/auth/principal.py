"""Who a verified access token speaks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops.common.auth.errors import InvalidToken
from finops.common.auth.scopes import EVENTS_WRITE_ANY, parse_scope
from finops.common.errors import AgentMismatch, TeamMismatch

#: why a bound account may not name a team, and who can change that
NOT_A_BOUND_TEAM = (
    "is not one of the teams the caller's account is bound to: an admin binds it to another"
    " (PUT /api/users/{id}/teams)"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as the token says: user id, name, role, granted scopes and, for an account
    bound to its teams, those teams."""

    sub: str
    username: str
    role: str
    scopes: frozenset[str]
    jti: str
    expires_at: int
    # The session the token belongs to (claim ``sid``): the login it descends from, or the
    # API key it was exchanged for. Revoking the session refuses every token carrying it.
    session_id: str | None = None
    # The teams the account is bound to (claim ``teams``); None: not bound, any team.
    teams: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def agent_ids(self) -> frozenset[str]:
        """The agent ids that are the caller itself: its user id and its username."""
        return frozenset({self.sub, self.username})

    def agent_name(self, agent_id: str) -> str:
        """The name the platform records ``agent_id`` under: the caller's username for its user id.

        A caller may name itself by its user id (``sub``) or by its username; downstream
        everything (budgets, pacing, stats, the records on the topics) is keyed by the one
        string, so the user id is replaced by the username. Any other id is kept as given: an
        admin writing for another agent by that agent's user id cannot be mapped without an
        auth lookup, and is recorded under that id. The one rule for ingest's events, the
        optimizer's recommendations and the healer's advice.

        Parameters
        ----------
        agent_id : str
            An ``agent_id`` the caller sent, already allowed by :meth:`speaks_for`.

        Returns
        -------
        str
            ``username`` if ``agent_id`` is the caller's ``sub``, else ``agent_id``.

        Examples
        --------
        >>> p = Principal("0b5e-uuid", "bot1", "agent", frozenset(), "jti", 0)
        >>> p.agent_name("0b5e-uuid"), p.agent_name("bot1"), p.agent_name("other")
        ('bot1', 'bot1', 'other')
        """
        return self.username if agent_id == self.sub else agent_id

    def speaks_for(self, agent_id: str) -> bool:
        """Whether the caller may act in ``agent_id``'s name: the id is its own, or the token
        has ``events:write:any`` (admins). The one rule for every endpoint that takes an
        ``agent_id``: ingest's events, the healer's advice, the optimizer's recommendations."""
        return agent_id in self.agent_ids or self.has_scope(EVENTS_WRITE_ANY)

    def require_speaks_for(self, agent_id: str, field: str = "agent_id") -> None:
        """Raise 403 ``agent_mismatch`` unless :meth:`speaks_for` ``agent_id``."""
        if not self.speaks_for(agent_id):
            raise AgentMismatch(
                f"{field} {agent_id!r} is not the caller's; acting for another agent needs "
                f"{EVENTS_WRITE_ANY}",
                details={"field": field, "agent_id": agent_id, "required_scope": EVENTS_WRITE_ANY},
            )

    def may_claim_team(self, team: str | None) -> bool:
        """Whether the caller may name ``team`` (an event's ``data.team``, a recommendation's
        ``team``): no team is named, the account is not bound to teams, ``team`` is one of
        its teams, or the token has ``events:write:any`` (admins). The one rule for ingest's
        events and the optimizer's recommendations.

        Examples
        --------
        >>> bound = Principal("id", "bot1", "agent", frozenset(), "jti", 0, teams={"ops"})
        >>> bound.may_claim_team("ops"), bound.may_claim_team(None), bound.may_claim_team("fin")
        (True, True, False)
        >>> Principal("id", "bot1", "agent", frozenset(), "jti", 0).may_claim_team("fin")
        True
        """
        return (
            team is None
            or self.teams is None
            or team in self.teams
            or self.has_scope(EVENTS_WRITE_ANY)
        )

    def require_may_claim_team(self, team: str | None, field: str = "team") -> None:
        """Raise 403 ``team_mismatch`` unless :meth:`may_claim_team` ``team``."""
        if not self.may_claim_team(team):
            raise TeamMismatch(
                f"{field} {team!r} {NOT_A_BOUND_TEAM}",
                details={"field": field, "team": team, "required_scope": EVENTS_WRITE_ANY},
            )

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from verified claims; a claim of the wrong type makes the token invalid."""
        sub, username, role, scope, jti, expires_at, session_id = (
            claims.get(name) for name in ("sub", "username", "role", "scope", "jti", "exp", "sid")
        )
        if not (
            isinstance(sub, str)
            and isinstance(username, str)
            and isinstance(role, str)
            and isinstance(scope, str)
            and isinstance(jti, str)
            and isinstance(expires_at, int)
            and (session_id is None or isinstance(session_id, str))
        ):
            raise InvalidToken("the access token lacks the platform's claims")
        return cls(
            sub=sub,
            username=username,
            role=role,
            scopes=parse_scope(scope),
            jti=jti,
            expires_at=expires_at,
            session_id=session_id,
            teams=_teams_claim(claims),
        )


def _teams_claim(claims: Mapping[str, Any]) -> frozenset[str] | None:
    """The ``teams`` claim as a set; None when the token has none (an unbound account). One
    that is not a list of strings makes the token invalid: a bound account's token must not
    pass for an unbound one's."""
    if "teams" not in claims:
        return None
    teams = claims["teams"]
    if not isinstance(teams, list) or not all(isinstance(team, str) for team in teams):
        raise InvalidToken("the access token's teams claim is not a list of team names")
    return frozenset(teams)
