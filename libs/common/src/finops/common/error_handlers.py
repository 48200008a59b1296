"""Every error a service raises, or FastAPI and Starlette raise for it, answered as one JSON
shape (:func:`install_error_handlers`): a :class:`FinopsError` from the table of
:mod:`finops.common.api_errors`, a validation error as ``validation_error`` with its fields,
Starlette's own (no route, wrong method) with their code, anything else as ``internal_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from finops.common.api_errors import error_body, http_answer
from finops.common.errors import FinopsError, InvalidJson, ValidationFailed
from finops.common.request_checks import reads_json_body

# the name these lines were logged under before this module was split from api_errors
log = logging.getLogger("finops.common.api_errors")


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
