"""The auth service's error answers, one table for the OpenAPI document and docs/auth.md."""

from __future__ import annotations

from typing import Any

from finops.common.api_errors import (
    INVALID_JSON,
    INVALID_TOKEN,
    NOT_AUTHENTICATED,
    UNSUPPORTED_FORM_MEDIA_TYPE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    responses,
)

ERRORS = (
    INVALID_JSON,
    ApiError(400, "bad_request", "the form body cannot be parsed"),
    ApiError(400, "invalid_request", "a grant type's required parameter is missing"),
    ApiError(
        400,
        "unsupported_grant_type",
        "`grant_type` is not password, client_credentials or refresh_token",
    ),
    ApiError(
        400,
        "invalid_scope",
        "the requested scope exceeds the account's (login) or the session's (refresh: a login"
        " or an earlier refresh narrowed it)",
    ),
    NOT_AUTHENTICATED,
    INVALID_TOKEN,
    ApiError(401, "invalid_credentials", "unknown user, wrong password or inactive account"),
    ApiError(401, "invalid_refresh_token", "unknown, expired or revoked refresh token"),
    ApiError(401, "refresh_token_reused", "a spent refresh token came back; its family is revoked"),
    ApiError(
        401,
        "invalid_client",
        "unknown or revoked API key, or one whose maker may no longer make keys for its"
        " account's role",
    ),
    ApiError(403, "insufficient_scope", "the token lacks the scope the call needs"),
    ApiError(403, "role_not_allowed", "an API key for an account of a higher role"),
    ApiError(404, "user_not_found", "no such user"),
    ApiError(404, "api_key_not_found", "no such API key (or not one the caller may see)"),
    ApiError(409, "username_taken", "the username is registered"),
    ApiError(409, "email_taken", "the email is registered (ignoring case)"),
    ApiError(409, "last_admin", "demoting or deactivating the last active admin"),
    ApiError(413, "payload_too_large", "the body is over 64 KiB"),
    UNSUPPORTED_MEDIA_TYPE,
    ApiError(422, "validation_error", "per-field problems in `details: [{field, message, type}]`"),
    ApiError(
        503,
        "dependency_unavailable",
        "PostgreSQL or Redis is down or did not answer in time; see `Retry-After`",
    ),
)
#: the 429 of the login endpoints
LOGIN_THROTTLING = (ApiError(429, "too_many_attempts", "login throttled; see `Retry-After`"),)
#: the 429s of registration
#: the 403 of registration alone
REGISTRATION_CLOSED = ApiError(
    403,
    "registration_closed",
    "public registration is closed (`FINOPS_REGISTRATION_OPEN=false`): an admin creates accounts",
)
REGISTRATION_THROTTLING = (
    ApiError(
        429,
        "too_many_registrations",
        "the client address used its registrations of the window "
        "(`FINOPS_REGISTRATION_MAX_PER_ADDRESS`); see `Retry-After`",
    ),
    ApiError(
        429,
        "registration_busy",
        "as many registration passwords are being hashed as the service allows at once "
        "(`FINOPS_REGISTRATION_HASHES_IN_FLIGHT`); `Retry-After: 1`",
    ),
)
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "seconds until a new attempt is allowed",
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds after which a retry may succeed",
            "schema": {"type": "string"},
        }
    },
}


def errors(
    *statuses: int,
    form: bool = False,
    throttling: tuple[ApiError, ...] = (),
    own: tuple[ApiError, ...] = (),
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of these statuses, each with every code auth gives with it
    (``form``: the 415 of a form-encoded body, not of a JSON one, and no ``invalid_json``),
    the endpoint's own 429s (``throttling``) and its other codes of its own (``own``)."""
    table = [
        UNSUPPORTED_FORM_MEDIA_TYPE if form and r is UNSUPPORTED_MEDIA_TYPE else r
        for r in ERRORS
        if not (form and r is INVALID_JSON)  # a form body is never parsed as JSON
    ]
    rows = [row for row in table if row.status in statuses]
    return responses(rows, own, throttling, headers=_HEADERS)


#: an endpoint with a JSON body (the form-encoded token endpoint has FORM_ERRORS, and
#: ``errors(..., form=True)`` for its own 415)
BODY_ERRORS = (400, 413, 415, 422, 503)
FORM_ERRORS = (400, 413, 415, 422, 503)
PROTECTED = (401, 503)
