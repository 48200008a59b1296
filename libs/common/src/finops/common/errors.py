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

import json
import re
from typing import Any, Self

from pydantic_core import from_json


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
    """A body that is not JSON. Built with :meth:`of`, its details say where and why:
    ``{"line", "column", "reason"}`` (see :func:`json_syntax_error`)."""

    code, message = "invalid_json", "request body is not valid JSON"

    @classmethod
    def of(cls, body: str | bytes) -> Self:
        """The error for ``body``, located; every service answers a body that is not JSON so.

        >>> error = InvalidJson.of(b'{"a": 1,\\n "b": }')
        >>> error.message
        'request body is not valid JSON: Expecting value at line 2 column 7'
        >>> error.details
        {'line': 2, 'column': 7, 'reason': 'Expecting value'}
        """
        where = json_syntax_error(body)
        if where is None:
            return cls()
        located = f" at line {where['line']} column {where['column']}" if where["line"] else ""
        return cls(f"{cls.message}: {where['reason']}{located}", details=where)


#: how pydantic's parser (serde_json) ends its messages
_AT_LINE_COLUMN = re.compile(r"(?P<reason>.+) at line (?P<line>\d+) column (?P<column>\d+)", re.S)


def json_syntax_error(body: str | bytes) -> dict[str, Any] | None:
    """Where and why ``body`` is not JSON: ``{"line", "column", "reason"}``, or None if it is.

    Python's parser reads it first, as FastAPI does with every body it decodes, so a service
    that parses the raw bytes itself (ingest) locates an error as the others do: line and
    column count from 1, the column in characters. A body Python reads but pydantic's parser
    refuses (nested over 200 levels deep, a lone surrogate, bytes that are not UTF-8) is located
    by pydantic's message, whose column counts bytes.

    >>> json_syntax_error('[1, 2,\\n  ]')
    {'line': 2, 'column': 3, 'reason': 'Expecting value'}
    >>> json_syntax_error(b"[" * 300 + b"]" * 300)
    {'line': 1, 'column': 202, 'reason': 'recursion limit exceeded'}
    >>> json_syntax_error(b"[" + b"1" * 5000 + b",]")
    {'line': 1, 'column': 4303, 'reason': 'number out of range'}
    >>> json_syntax_error(b'{"a": [1]}') is None
    True
    """
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return {"line": exc.lineno, "column": exc.colno, "reason": exc.msg}
    except (ValueError, RecursionError):  # not UTF-8, an integer over Python's 4,300 digits
        pass
    try:
        from_json(body)
    except ValueError as exc:
        located = _AT_LINE_COLUMN.fullmatch(str(exc))
        if located is None:
            return {"line": None, "column": None, "reason": str(exc)}
        return {
            "line": int(located["line"]),
            "column": int(located["column"]),
            "reason": located["reason"],
        }
    return None


#: the media type of a form-encoded body (OAuth2's token endpoint takes no other)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


class UnsupportedMediaType(FinopsError):
    """A body whose ``Content-Type`` is not the one its endpoint reads: JSON, or for a
    form-encoded endpoint ``application/x-www-form-urlencoded``.

    ``details``: ``{"expected": <that type>, "received": <the header, or null>}``.
    """

    code = "unsupported_media_type"
    message = "the body must be JSON, sent with Content-Type: application/json"

    @classmethod
    def of(cls, content_type: str | None, expected: str = "application/json") -> Self:
        received = "no Content-Type" if content_type is None else f"Content-Type {content_type}"
        must = (
            cls.message
            if expected == "application/json"
            else f"the body must be form-encoded, sent with Content-Type: {expected}"
        )
        return cls(
            f"{must} (received {received})",
            details={"expected": expected, "received": content_type},
        )


class NotAuthenticated(FinopsError):
    code, message = "not_authenticated", "authentication required"


class Forbidden(FinopsError):
    code, message = "forbidden", "not allowed"


class AgentMismatch(Forbidden):
    """An ``agent_id`` that is not the caller's, from a token without ``events:write:any``."""

    code = "agent_mismatch"
    message = "only the caller's own agent_id may be used"


class TeamMismatch(Forbidden):
    """A ``team`` outside the teams the caller's account is bound to, from a token without
    ``events:write:any``."""

    code = "team_mismatch"
    message = "only the teams the caller's account is bound to may be named"


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
