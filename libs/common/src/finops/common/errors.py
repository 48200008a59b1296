"""The exception tree every service raises: a stable machine-readable code, a message, details.

Pure: no HTTP here. Domain code raises :class:`FinopsError` subclasses; a service's own error
subclasses the family it belongs to (``class UsernameTaken(Conflict)``), so the API layer
(:mod:`finops.common.api_errors`, one table of codes) knows how to answer it without the
domain knowing what a status code is.

>>> error = RateLimited("slow down", retry_after_seconds=30)
>>> (error.code, error.message, error.retry_after_seconds)
('rate_limited', 'slow down', 30)
>>> UsernameTaken = type("UsernameTaken", (Conflict,), {"code": "username_taken"})
>>> [cls.code for cls in UsernameTaken.__mro__ if issubclass(cls, FinopsError)]
['username_taken', 'conflict', 'internal_error']
"""

from __future__ import annotations

from typing import Any


class FinopsError(Exception):
    """Base of every error a client may see. Subclasses fix ``code`` and ``message``.

    ``retry_after_seconds`` says when trying again may succeed (a throttle, a dependency that
    is down); the API layer tells the client.
    """

    code = "internal_error"
    message = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.retry_after_seconds = retry_after_seconds


class BadRequest(FinopsError):
    code, message = "bad_request", "bad request"


class InvalidJson(FinopsError):
    code, message = "invalid_json", "request body is not valid JSON"


class NotAuthenticated(FinopsError):
    code, message = "not_authenticated", "authentication required"


class Forbidden(FinopsError):
    code, message = "forbidden", "not allowed"


class NotFound(FinopsError):
    code, message = "not_found", "not found"


class Conflict(FinopsError):
    code, message = "conflict", "conflict"


class PayloadTooLarge(FinopsError):
    code, message = "payload_too_large", "request body too large"


class ValidationFailed(FinopsError):
    code, message = "validation_error", "request is invalid"


class RateLimited(FinopsError):
    code, message = "rate_limited", "too many requests"


class Unavailable(FinopsError):
    code, message = "unavailable", "a dependency is unavailable"


class DependencyUnavailable(Unavailable):
    """PostgreSQL, Redis or another server did not answer in time; the answer carries
    Retry-After (see :mod:`finops.common.datastores`)."""

    code, message = "dependency_unavailable", "a dependency is unavailable; retry later"
