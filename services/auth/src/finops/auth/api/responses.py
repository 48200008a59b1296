"""OpenAPI documentation of the error answers, so every status code an endpoint gives is listed."""

from __future__ import annotations

from typing import Any

from finops.auth.api.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Malformed request: invalid_json, bad_request, invalid_request, "
    "unsupported_grant_type or invalid_scope",
    401: "Not authenticated: invalid_token (missing, malformed, expired, revoked), "
    "invalid_credentials, invalid_refresh_token, refresh_token_reused or invalid_client",
    403: "insufficient_scope (the token lacks the scope) or role_not_allowed",
    404: "user_not_found or api_key_not_found",
    409: "username_taken, email_taken or last_admin",
    413: "payload_too_large: the body exceeds the service's limit (64 KiB)",
    422: "validation_error with one entry per field in details",
    429: "too_many_attempts: too many failed logins; see Retry-After",
    503: "dependency_unavailable: PostgreSQL or Redis is down or did not answer in time "
    "(see Retry-After)",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Bearer challenge",
            "schema": {"type": "string"},
        }
    },
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


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


BODY_ERRORS = (400, 413, 422, 503)
PROTECTED = (401, 503)
