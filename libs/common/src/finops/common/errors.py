"""One error shape for every service: ``{"error": {"code", "message", "details"}}``.

Domain code raises :class:`FinopsError` subclasses carrying a stable machine-readable code;
only the HTTP layer (:func:`install_error_handlers`) turns them into responses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)


class FinopsError(Exception):
    """Base of every error a client may see. Subclasses fix ``code`` and ``status``."""

    code = "internal_error"
    status = 500
    message = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}


class BadRequest(FinopsError):
    code, status, message = "bad_request", 400, "bad request"


class InvalidJson(FinopsError):
    code, status, message = "invalid_json", 400, "request body is not valid JSON"


class NotAuthenticated(FinopsError):
    code, status, message = "not_authenticated", 401, "authentication required"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(message, **kwargs)


class Forbidden(FinopsError):
    code, status, message = "forbidden", 403, "not allowed"


class NotFound(FinopsError):
    code, status, message = "not_found", 404, "not found"


class Conflict(FinopsError):
    code, status, message = "conflict", 409, "conflict"


class PayloadTooLarge(FinopsError):
    code, status, message = "payload_too_large", 413, "request body too large"


class ValidationFailed(FinopsError):
    code, status, message = "validation_error", 422, "request is invalid"


class RateLimited(FinopsError):
    code, status, message = "rate_limited", 429, "too many requests"


class Unavailable(FinopsError):
    code, status, message = "unavailable", 503, "a dependency is unavailable"


class DependencyUnavailable(Unavailable):
    """PostgreSQL, Redis or another server did not answer in time; the answer carries
    Retry-After (see :mod:`finops.common.datastores`)."""

    code, message = "dependency_unavailable", "a dependency is unavailable; retry later"


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The shape of every error answer, for the OpenAPI ``responses`` of each route."""

    error: ErrorInfo


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(exc: FinopsError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
    )


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{field, message, type}]`` with dotted field paths."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type")})
    return out


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FinopsError)
    async def _finops(_: Request, exc: FinopsError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request failed", extra={"code": exc.code, "error": exc.message})
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            return error_response(InvalidJson(details=field_errors(errs)))
        return error_response(ValidationFailed(details=field_errors(errs)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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
