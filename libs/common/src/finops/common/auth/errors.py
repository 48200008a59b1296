"""Errors of token verification. The HTTP layer turns them into 401 / 403 responses."""

from __future__ import annotations

from typing import Any

from finops.common.errors import Forbidden, NotAuthenticated


class InvalidToken(NotAuthenticated):
    """Missing, malformed, expired, wrongly signed, wrong-audience or revoked token.

    Every case shares one code so a client learns only "get a new token"; the message says
    which check failed, which helps an operator and tells an attacker nothing new.
    """

    code, status, message = "invalid_token", 401, "the access token is invalid"


class TokenRevoked(InvalidToken):
    message = "the access token has been revoked"


class InsufficientScope(Forbidden):
    code, status, message = "insufficient_scope", 403, "the token lacks a required scope"

    def __init__(self, scope: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "headers", {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}
        )
        kwargs.setdefault("details", {"required_scope": scope})
        super().__init__(f"this call needs the scope {scope!r}", **kwargs)
