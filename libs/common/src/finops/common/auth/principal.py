"""Who a verified access token speaks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops.common.auth.errors import InvalidToken
from finops.common.auth.scopes import parse_scope


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as the token says: user id, name, role and granted scopes."""

    sub: str
    username: str
    role: str
    scopes: frozenset[str]
    jti: str
    expires_at: int
    # The session the token belongs to (claim ``sid``): the login it descends from, or the
    # API key it was exchanged for. Revoking the session refuses every token carrying it.
    session_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

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
        )
