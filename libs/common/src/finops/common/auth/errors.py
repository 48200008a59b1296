"""Errors of token verification. The API layer (:mod:`finops.common.api_errors`) answers them
with 401 / 403 and their ``WWW-Authenticate`` challenge."""

from __future__ import annotations

from finops.common.errors import Forbidden, NotAuthenticated


class InvalidToken(NotAuthenticated):
    """Missing, malformed, expired, wrongly signed, wrong-audience or revoked token.

    Every case shares one code so a client learns only "get a new token"; the message says
    which check failed, which helps an operator and tells an attacker nothing new.
    """

    code, message = "invalid_token", "the access token is invalid"


class TokenRevoked(InvalidToken):
    message = "the access token has been revoked"


class InsufficientScope(Forbidden):
    code, message = "insufficient_scope", "the token lacks a required scope"

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"this call needs the scope {scope!r}", details={"required_scope": scope})
