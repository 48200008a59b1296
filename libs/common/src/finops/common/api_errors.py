"""Every endpoint's error answers, declared once: the OpenAPI ``responses`` and the docs' tables.

A service lists its errors as :class:`ApiError` rows (status, code, when) and passes them to a
route as ``responses=responses(...)``. The OpenAPI document then describes each status with
its codes and carries the rows themselves under ``x-error-codes``, from which
:mod:`finops.common.error_docs` writes the tables in ``docs/`` (``make docs``; a test checks
that they are current).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from finops.common.errors import ErrorResponse

#: the OpenAPI extension holding an answer's rows
EXTENSION = "x-error-codes"
#: every 503 says when to come back
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
}


@dataclass(frozen=True)
class ApiError:
    status: int
    code: str
    when: str


def responses(
    *errors: ApiError | Iterable[ApiError],
    model: type[BaseModel] = ErrorResponse,
    headers: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for these errors (rows or groups of rows), one entry per status."""
    rows: list[ApiError] = []
    for item in errors:
        rows.extend([item] if isinstance(item, ApiError) else item)
    by_status: dict[int, list[ApiError]] = {}
    for row in rows:
        if row not in by_status.setdefault(row.status, []):
            by_status[row.status].append(row)
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        entry: dict[str, Any] = {
            "model": model,
            "description": "; ".join(f"`{r.code}`: {r.when}" for r in by_status[status]),
            EXTENSION: [{"code": r.code, "when": r.when} for r in by_status[status]],
        }
        if headers and status in headers:
            entry["headers"] = dict(headers[status])
        elif status == 503:
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


# Token verification, the same in every service (finops.common.auth).
NOT_AUTHENTICATED = ApiError(401, "not_authenticated", "no bearer token")
INVALID_TOKEN = ApiError(
    401,
    "invalid_token",
    "the token is malformed, expired, wrongly signed, for another audience or revoked (logged out)",
)
BLOCKLIST_DOWN = ApiError(
    503,
    "dependency_unavailable",
    "Redis (the token blocklist) or auth's signing keys did not answer in time (verification "
    "fails closed); see `Retry-After`",
)


INSUFFICIENT_SCOPE = ApiError(
    403, "insufficient_scope", "the token lacks the endpoint's scope (`details.required_scope`)"
)
#: the errors of any endpoint that takes a bearer token
BEARER = (NOT_AUTHENTICATED, INVALID_TOKEN, INSUFFICIENT_SCOPE, BLOCKLIST_DOWN)
