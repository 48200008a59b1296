"""The API layer of errors: how each error code is answered over HTTP, and what each endpoint
declares it may answer.

:data:`ANSWERS` is the one table from an error code (:mod:`finops.common.errors`) to its status
and headers; :func:`install_error_handlers` answers every :class:`FinopsError` from it, in
every service. A code missing from the table takes the answer of the nearest base class whose
code is in it (``username_taken`` is a ``Conflict``: 409).

A service lists its errors as :class:`ApiError` rows (status, code, when) and passes them to a
route as ``responses=responses(...)``. The OpenAPI document then describes each status with
its codes and carries the rows themselves under ``x-error-codes``, from which
:mod:`finops.common.error_docs` writes the tables in ``docs/`` (``make docs``; a test checks
that they are current).
"""

from __future__ import annotations

import email.message
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from finops.common.errors import (
    FORM_MEDIA_TYPE,
    FinopsError,
    InvalidJson,
    UnsupportedMediaType,
    ValidationFailed,
)

log = logging.getLogger(__name__)


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
#: before any route runs (:func:`require_known_query`); every ``/api/`` endpoint declares it
#: (:func:`declare_query_errors`)
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
#: a body not declared JSON, refused before it is parsed (:func:`require_json_body`)
UNSUPPORTED_MEDIA_TYPE = ApiError(
    415,
    "unsupported_media_type",
    "the body's `Content-Type` is missing or not JSON (`application/json` or `+json`): "
    "`details: {expected, received}`",
)
#: a form-encoded endpoint's body sent as something else, JSON included (:func:`require_json_body`)
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


@functools.lru_cache(maxsize=64)  # a header parse on every JSON request; clients send few
def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters ignored (as FastAPI
    decides whether to parse a body as JSON).

    >>> [is_json_media_type(t) for t in ("application/json; charset=utf-8", "text/plain")]
    [True, False]
    >>> is_json_media_type("application/problem+json")
    True
    """
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def is_form_media_type(content_type: str) -> bool:
    """``application/x-www-form-urlencoded``, parameters ignored.

    >>> [is_form_media_type(t) for t in (FORM_MEDIA_TYPE + "; charset=utf-8", "application/json")]
    [True, False]
    """
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_type() == FORM_MEDIA_TYPE


def reads_form_body(route: Any) -> bool:
    """Whether a route's body is a URL-encoded form (OAuth2's token endpoint); a multipart
    upload (``File``, a kind of ``Form`` to FastAPI) is not one."""
    body_field = getattr(route, "body_field", None)
    return (
        body_field is not None
        and isinstance(body_field.field_info, params.Form)
        and body_field.field_info.media_type == FORM_MEDIA_TYPE
    )


def reads_json_body(route: Any) -> bool:
    """Whether a route's body is JSON: a body parameter that is not a form, or (a route that
    reads the raw bytes itself, as ingest's ``POST /api/events``) a JSON request body declared
    in its ``openapi_extra``."""
    body_field = getattr(route, "body_field", None)
    if body_field is not None:
        return not isinstance(body_field.field_info, params.Form)
    extra = getattr(route, "openapi_extra", None) or {}
    return "application/json" in extra.get("requestBody", {}).get("content", {})


async def require_json_body(request: Request) -> None:
    """Refuse with 415 ``unsupported_media_type`` a body that a JSON endpoint would not parse.

    FastAPI parses a body as JSON only when its ``Content-Type`` says so, and hands anything
    else (``curl -d``'s form encoding, ``text/plain``, no header at all) to validation as
    bytes, which ends in a 422 that does not say what went wrong. Browsers send such bodies
    cross-site without asking first (no CORS preflight), which is why FastAPI does not parse
    them. Every service installs this as an app-wide dependency (:mod:`finops.common.http`),
    so every endpoint that reads JSON, whether FastAPI or the service parses it, answers the
    same; an empty body is left to the endpoint.

    A form-encoded endpoint (OAuth2's token endpoint) is held to its own type the same way:
    FastAPI would read a JSON body there as an empty form, and the route would then say a
    field that was sent is missing.
    """
    route = request.scope.get("route")
    if reads_form_body(route):
        expected, accepts = FORM_MEDIA_TYPE, is_form_media_type
    elif reads_json_body(route):
        expected, accepts = "application/json", is_json_media_type
    else:
        return
    content_type = request.headers.get("content-type")
    if content_type is not None and accepts(content_type):
        return
    if not await _has_body(request):
        return
    raise UnsupportedMediaType.of(content_type, expected)


async def _has_body(request: Request) -> bool:
    try:
        return bool(await request.body())
    except RuntimeError:  # FastAPI streamed it away parsing a multipart form: there was one
        return True


_DECLARED_QUERY = "_finops_declared_query"  # the route's attribute caching it


def _declared_query(route: APIRoute) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters a route declares (its dependencies' included), and those of them
    that may repeat (a list); worked out once per route."""
    cached: tuple[frozenset[str], frozenset[str]] | None = getattr(route, _DECLARED_QUERY, None)
    if cached is None:
        fields = [
            f for f in get_flat_params(route.dependant) if isinstance(f.field_info, params.Query)
        ]
        names = frozenset(f.alias for f in fields)
        repeatable = frozenset(
            f.alias for f in fields if field_annotation_is_sequence(f.field_info.annotation)
        )
        cached = (names, repeatable)
        setattr(route, _DECLARED_QUERY, cached)
    return cached


async def require_known_query(request: Request) -> None:
    """Refuse with 422 ``validation_error`` a query parameter an ``/api/`` endpoint does not
    take (``?stat=open`` for ``?state=open``), or one it takes once given twice
    (``?unit=a&unit=b``): Starlette would ignore the first and FastAPI keep the last, and the
    caller would get an answer to a question it did not ask. ``details`` names each,
    ``query.<name>``, type ``unknown_parameter`` or ``duplicate_parameter``. A route whose
    ``openapi_extra`` sets :data:`FREE_QUERY` reads other parameters itself: only its
    declared ones are checked. Every service installs this as an app-wide dependency
    (:mod:`finops.common.http`), so it runs before the token is checked.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.path.startswith(API_PREFIX):
        return
    names, repeatable = _declared_query(route)
    free = bool((route.openapi_extra or {}).get(FREE_QUERY))
    details: list[dict[str, str]] = []
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        field = f"query.{name}"
        if name not in names:
            if not free and name not in seen:
                message = f"{name!r} is not a parameter of this endpoint"
                details.append({"field": field, "message": message, "type": "unknown_parameter"})
        elif name in seen and name not in repeatable:
            if not any(d["field"] == field for d in details):
                message = f"{name!r} given more than once"
                details.append({"field": field, "message": message, "type": "duplicate_parameter"})
        seen.add(name)
    if details:
        summary = details[0]["message"] if len(details) == 1 else "invalid query parameters"
        raise ValidationFailed(summary, details=details)


def declare_query_errors(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`UNKNOWN_QUERY` to the 422 answer of every ``/api/`` operation of an OpenAPI
    document (:func:`require_known_query` answers it on each of them)."""
    row = {"code": UNKNOWN_QUERY.code, "when": UNKNOWN_QUERY.when}
    line = f"`{UNKNOWN_QUERY.code}`: {UNKNOWN_QUERY.when}"
    for path, operations in openapi.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            answers = operation.setdefault("responses", {})
            answer = answers.setdefault(
                str(UNKNOWN_QUERY.status),
                {
                    "description": "",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                },
            )
            rows = answer.setdefault(EXTENSION, [])
            if row not in rows:
                rows.append(row)
                answer["description"] = "; ".join(filter(None, (answer["description"], line)))
    return openapi


def error_response(error: FinopsError) -> JSONResponse:
    answer = http_answer(error)
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=answer.status,
        headers=answer.headers(error),
    )


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{field, message, type}]`` with dotted field paths."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type")})
    return out


#: the code of an HTTPException raised by Starlette itself (no route, wrong method, ...)
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path answers.

    Starlette's 405 names the methods of the first route whose path matched, but a path
    often has several routes (``GET`` and ``POST`` of a collection). Each method is tried
    against the app's routes with the same path: only on a 405, so the cost does not matter,
    and it relies on nothing but ``BaseRoute.matches`` (included routers nest routes).
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def _undecoded_body(request: Request, cause: BaseException) -> bytes:
    """The body FastAPI could not decode (the bytes the decoder was given, else the request's)."""
    if isinstance(cause, UnicodeDecodeError):
        return cause.object
    return await request.body()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FinopsError)
    async def _finops(_: Request, exc: FinopsError) -> JSONResponse:
        if http_answer(exc).status >= 500:
            log.error("request failed", extra={"code": exc.code, "error": exc.message})
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            # FastAPI keeps the text it could not parse: located the way ingest locates its own
            body = exc.body if isinstance(exc.body, str | bytes) else None
            return error_response(InvalidJson() if body is None else InvalidJson.of(body))
        return error_response(ValidationFailed(details=field_errors(errs)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if (
            exc.status_code == 400
            and isinstance(exc.__cause__, ValueError | RecursionError)
            and reads_json_body(request.scope.get("route"))
        ):
            # FastAPI's "There was an error parsing the body": Python's parser could not read
            # it (not UTF-8, an integer over 4,300 digits); located the way ingest locates it
            return error_response(InvalidJson.of(await _undecoded_body(request, exc.__cause__)))
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers, details = getattr(exc, "headers", None), None
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            details = {"allowed_methods": allowed}
        return JSONResponse(
            error_body(code, str(exc.detail), details),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
