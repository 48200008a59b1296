"""The API layer of errors: how each error code is answered over HTTP, and what each endpoint
declares it may answer.

:data:`ANSWERS` is the one table from an error code (:mod:`finops.common.errors`) to its status
and headers; :func:`finops.common.error_handlers.install_error_handlers` answers every
:class:`FinopsError` from it, in every service. A code missing from the table takes the answer
of the nearest base class whose code is in it (``username_taken`` is a ``Conflict``: 409).

A service lists its errors as :class:`ApiError` rows (status, code, when) and passes them to a
route as ``responses=responses(...)``. The OpenAPI document then describes each status with
its codes and carries the rows themselves under ``x-error-codes``, from which
:mod:`finops.common.error_docs` writes the tables in ``docs/`` (``make docs``; a test checks
that they are current). The requests every service refuses before a route runs (a body that is
not JSON, an unknown query parameter) are checked in :mod:`finops.common.request_checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from finops.common.errors import FORM_MEDIA_TYPE, FinopsError


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The shape of every error answer, for the OpenAPI ``responses`` of each route."""

    error: ErrorInfo


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _no_headers(_: FinopsError) -> dict[str, str]:
    return {}


def _retry_after(error: FinopsError) -> dict[str, str]:
    if error.retry_after_seconds is None:
        return {}
    return {"Retry-After": str(error.retry_after_seconds)}


def _challenge(value: str) -> Callable[[FinopsError], dict[str, str]]:
    return lambda _: {"WWW-Authenticate": value}


def _scope_challenge(error: FinopsError) -> dict[str, str]:
    scope = error.details["required_scope"]
    return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


@dataclass(frozen=True)
class HttpAnswer:
    """How an error code is answered: the status, and the headers built from the error."""

    status: int
    headers: Callable[[FinopsError], dict[str, str]] = field(default=_no_headers)


#: error code -> its HTTP answer (codes not here take their base class's answer)
ANSWERS: Mapping[str, HttpAnswer] = {
    "bad_request": HttpAnswer(400),
    "invalid_json": HttpAnswer(400),
    # No credentials (no bearer token; a bad password, API key or refresh token, which are
    # not bearer tokens): the plain challenge, with no error code, as RFC 6750 section 3.1
    # asks of a request that lacks authentication.
    "not_authenticated": HttpAnswer(401, _challenge("Bearer")),
    # a bearer token was sent and refused
    "invalid_token": HttpAnswer(401, _challenge('Bearer error="invalid_token"')),
    "forbidden": HttpAnswer(403),
    "insufficient_scope": HttpAnswer(403, _scope_challenge),
    "not_found": HttpAnswer(404),
    "conflict": HttpAnswer(409),
    "payload_too_large": HttpAnswer(413),
    "unsupported_media_type": HttpAnswer(415),
    "validation_error": HttpAnswer(422),
    "rate_limited": HttpAnswer(429, _retry_after),
    "internal_error": HttpAnswer(500),
    "unavailable": HttpAnswer(503, _retry_after),
}


def http_answer(error: FinopsError) -> HttpAnswer:
    """The answer of ``error``'s own code, else of the nearest base class's code in the table.

    >>> from finops.common.errors import Conflict
    >>> class UsernameTaken(Conflict):
    ...     code = "username_taken"
    >>> http_answer(UsernameTaken()).status
    409
    """
    inherited = (vars(cls)["code"] for cls in type(error).__mro__ if "code" in vars(cls))
    for code in (error.code, *inherited):
        if code in ANSWERS:
            return ANSWERS[code]
    return ANSWERS["internal_error"]


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
#: an ``agent_id`` not the caller's (``Principal.require_speaks_for``)
AGENT_MISMATCH = ApiError(
    403,
    "agent_mismatch",
    "`agent_id` is neither the caller's username nor its user id, and the token lacks "
    "`events:write:any` (`details: {field, agent_id, required_scope}`)",
)
#: a ``team`` outside the teams the caller's account is bound to
#: (``Principal.require_may_claim_team``)
TEAM_MISMATCH = ApiError(
    403,
    "team_mismatch",
    "`team` is not one of the teams an admin bound the caller's account to, and the token "
    "lacks `events:write:any` (`details: {field, team, required_scope}`)",
)
#: the errors of any endpoint that takes a bearer token
BEARER = (NOT_AUTHENTICATED, INVALID_TOKEN, INSUFFICIENT_SCOPE, BLOCKLIST_DOWN)

#: a query parameter holding NUL or a percent-encoding that is not UTF-8, refused before any
#: route runs (:mod:`finops.common.http`)
NUL_IN_QUERY = ApiError(
    422,
    "validation_error",
    "a query parameter's value or name holds a NUL character (`%00`) or a percent-encoding "
    "that is not UTF-8 text (`%ff`); `details` names each (`query.<name>`, type `invalid_text`)",
)
#: a query parameter the endpoint does not take, or one it takes once given twice, refused
#: before any route runs (:func:`finops.common.request_checks.require_known_query`); every
#: ``/api/`` endpoint declares it (:func:`finops.common.request_checks.declare_query_errors`)
UNKNOWN_QUERY = ApiError(
    422,
    "validation_error",
    "a query parameter the endpoint does not take, or one it takes once given twice; "
    "`details` names each (`query.<name>`, type `unknown_parameter` or `duplicate_parameter`)",
)
#: the ``openapi_extra`` key of a route that reads query parameters it does not declare
#: (the optimizer's recommendation features): only its declared ones are held to one each
FREE_QUERY = "x-free-query-parameters"
#: the routes held to their declared query parameters
API_PREFIX = "/api/"

#: a body that is not JSON, whether FastAPI or the service parsed it (``InvalidJson.of``)
INVALID_JSON = ApiError(
    400,
    "invalid_json",
    "the body is not JSON (or not UTF-8 text); `details: {line, column, reason}` say where "
    "parsing stopped and why (line and column count from 1)",
)
#: a body not declared JSON, refused before it is parsed
#: (:func:`finops.common.request_checks.require_json_body`)
UNSUPPORTED_MEDIA_TYPE = ApiError(
    415,
    "unsupported_media_type",
    "the body's `Content-Type` is missing or not JSON (`application/json` or `+json`): "
    "`details: {expected, received}`",
)
#: a form-encoded endpoint's body sent as something else, JSON included
#: (:func:`finops.common.request_checks.require_json_body`)
UNSUPPORTED_FORM_MEDIA_TYPE = ApiError(
    415,
    "unsupported_media_type",
    f"a form-encoded endpoint's body has no `Content-Type` or one other than `{FORM_MEDIA_TYPE}`"
    ", JSON included: `details: {expected, received}`",
)
#: the errors of any endpoint that reads a JSON body: one over the limit is refused before
#: the route runs (:mod:`finops.common.http`); one that is not UTF-8 text is ``invalid_json``
JSON_BODY = (
    INVALID_JSON,
    ApiError(413, "payload_too_large", "the body is over `FINOPS_MAX_BODY_BYTES` (1 MiB)"),
    UNSUPPORTED_MEDIA_TYPE,
)
