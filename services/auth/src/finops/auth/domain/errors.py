"""The auth service's errors. Each has a stable ``code``; only the API layer makes HTTP of them."""

from __future__ import annotations

from typing import Any

from finops.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ValidationFailed,
)


class InvalidCredentials(NotAuthenticated):
    """Unknown user, wrong password and inactive user alike: one answer tells nothing."""

    code, message = "invalid_credentials", "incorrect login or password"


class Throttled(RateLimited):
    """A 429 whose ``Retry-After`` (and ``details.retry_after_seconds``) says when to retry."""

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        super().__init__(
            details={"retry_after_seconds": self.retry_after_seconds},
            retry_after_seconds=self.retry_after_seconds,
        )


class LoginThrottled(Throttled):
    code, message = "too_many_attempts", "too many failed logins; try again later"


class RegistrationThrottled(Throttled):
    """The client address has used its registrations of the window."""

    code = "too_many_registrations"
    message = "too many registrations from this address; try again later"


class RegistrationBusy(Throttled):
    """Every password-hashing slot for registrations stayed taken while this one waited."""

    code = "registration_busy"
    message = "too many registrations at once; try again in a moment"


class AccountInvalid(ValidationFailed):
    """A new account breaks the username, email or password rules (details: per field)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("the account details are invalid", details=problems)


class TeamsInvalid(ValidationFailed):
    """Team names an account cannot be bound to (details: per name, as ``teams.<index>``)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("the teams are invalid", details=problems)


class UsernameTaken(Conflict):
    code, message = "username_taken", "this username is already registered"


class EmailTaken(Conflict):
    code, message = "email_taken", "this email address is already registered"


class LastAdmin(Conflict):
    code, message = "last_admin", "the last active admin cannot lose the admin role"


class InvalidRefreshToken(NotAuthenticated):
    code, message = "invalid_refresh_token", "the refresh token is invalid, expired or revoked"


class RefreshTokenReused(InvalidRefreshToken):
    code = "refresh_token_reused"
    message = "this refresh token was already used; the session has been revoked"


class InvalidClient(NotAuthenticated):
    code, message = "invalid_client", "the API key is invalid or revoked"


class UnsupportedGrantType(BadRequest):
    code = "unsupported_grant_type"
    message = "grant_type must be password, client_credentials or refresh_token"


class InvalidScope(BadRequest):
    code, message = "invalid_scope", "the requested scope exceeds what the account is granted"


class ScopeBeyondSession(InvalidScope):
    """A refresh asked for a scope its session does not hold: the login (or an earlier
    refresh) narrowed it, or the account's role lost it since. The account may well have the
    scope: saying it does not sent users after its role."""

    message = (
        "the requested scope exceeds what this session holds (its login or an earlier refresh"
        " narrowed it); a refresh can only narrow a session: log in again for more"
    )


class MissingParameter(BadRequest):
    code = "invalid_request"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is required for this grant type", details={"field": name})


class UserNotFound(NotFound):
    code, message = "user_not_found", "no such user"


class ApiKeyNotFound(NotFound):
    code, message = "api_key_not_found", "no such API key"


class RegistrationClosed(Forbidden):
    """Public registration is closed (``FINOPS_REGISTRATION_OPEN=false``): accounts are made by
    an admin, so that no one else can add a reporter of events (a second account makes the
    breakers' quorum, reports costs, tags experiments)."""

    code, message = (
        "registration_closed",
        "public registration is closed on this platform: an admin creates accounts",
    )


class RoleNotAllowed(Forbidden):
    code, message = "role_not_allowed", "you may not act for an account with this role"
