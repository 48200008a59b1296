"""Assembly of a service's HTTP app: health, readiness, metrics, request ids, body limits.

Every service builds its FastAPI app with :func:`create_service_app` so the operational
surface (``/healthz``, ``/readyz``, ``/metrics``, the error shape, JSON logs with a request
id) is the same everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops.common.api_errors import error_body
from finops.common.datastores import install_dependency_failure_handler
from finops.common.error_handlers import install_error_handlers
from finops.common.logging import request_id_var
from finops.common.metrics import HTTP_LATENCY, HTTP_REQUESTS, install_metrics_endpoint
from finops.common.request_checks import (
    declare_query_errors,
    require_json_body,
    require_known_query,
)
from finops.common.response_body import Readiness
from finops.common.settings import CommonSettings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[Any]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class OperationalMiddleware:
    """Request id, request-size limit and Prometheus timings in one pure ASGI layer."""

    def __init__(self, app: ASGIApp, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500
        routed = False
        try:
            problem = nul_problem(scope)
            if problem is not None:
                status = 422
                await self._refuse(send, request_id, 422, problem)
                return
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                status = 413
                await self._too_large(send, request_id)
                return

            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge(self.max_body_bytes)
                return message

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode("latin-1")),
                    ]
                await send(message)

            routed = True
            try:
                await self.app(scope, limited_receive, send_with_id)
            except _BodyTooLarge:
                status = 413
                await self._too_large(send, request_id)
        finally:
            route = _route_label(scope, routed)
            method = method_label(scope.get("method", ""))
            HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc()
            HTTP_LATENCY.labels(self.service, route, method).observe(time.perf_counter() - start)
            request_id_var.reset(token)

    async def _too_large(self, send: Send, request_id: str) -> None:
        problem = error_body(
            "payload_too_large", f"request body exceeds {self.max_body_bytes} bytes"
        )
        await self._refuse(send, request_id, 413, problem)

    @staticmethod
    async def _refuse(send: Send, request_id: str, status: int, problem: dict[str, Any]) -> None:
        body = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


#: how long /readyz waits for each check (seconds)
READY_CHECK_TIMEOUT_S = 3.0

NUL = "\x00"
_NUL_IN_PATH = "the path holds a NUL character (%00), which no identifier may contain"
_NUL_IN_QUERY = "a query parameter holds a NUL character (%00), which no value may contain"
_NOT_UTF8_IN_PATH = "the path holds a percent-encoding that is not UTF-8 text (such as %ff)"
_NOT_UTF8_IN_QUERY = (
    "a query parameter holds a percent-encoding that is not UTF-8 text (such as %ff)"
)


def _is_utf8(encoded: bytes, *, plus_is_space: bool) -> bool:
    """Whether percent-decoding ``encoded`` gives UTF-8 text (Starlette and uvicorn decode
    with ``errors="replace"``: every invalid sequence would become U+FFFD)."""
    if plus_is_space:
        encoded = encoded.replace(b"+", b" ")
    try:
        urllib.parse.unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _query_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The query's ``(name, value)`` pairs, still percent-encoded (blank ones skipped, as
    :class:`QueryParams` skips them)."""
    pairs = []
    for part in raw.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((name, value))
    return pairs


def _field_name(name: bytes) -> str:
    return urllib.parse.unquote_plus(name.decode("latin-1"))


def nul_problem(scope: Scope) -> dict[str, Any] | None:
    """The 422 body for a request whose path or query holds a NUL character, or a
    percent-encoding that does not decode as UTF-8 (``%ff``), else None.

    Path parameters become keys stored in PostgreSQL, and query values become keys and records
    too (a task type, a team, a feature's name on ``finops.recommendations.v1``); PostgreSQL's
    text cannot hold NUL, and ingest refuses it in every event. A percent-encoding that is not
    UTF-8 would reach a route as U+FFFD (the server decodes with ``errors="replace"``): ``%ff``
    and ``%fe`` would be the same budget id, experiment unit or task type. Both are refused
    here, once for every route of every service, rather than by each route that reads a value:
    422 ``validation_error``, as for any other invalid parameter, with one ``details`` entry
    per query parameter whose name or value holds one, its ``field`` named as FastAPI names a
    query parameter (``query.<name>``), type ``invalid_text``.
    """
    if NUL in scope.get("path", ""):
        details = [{"field": "path", "message": _NUL_IN_PATH, "type": "invalid_text"}]
        return error_body("validation_error", _NUL_IN_PATH, details)
    raw_path = scope.get("raw_path")
    if raw_path is not None and b"%" in raw_path and not _is_utf8(raw_path, plus_is_space=False):
        details = [{"field": "path", "message": _NOT_UTF8_IN_PATH, "type": "invalid_text"}]
        return error_body("validation_error", _NOT_UTF8_IN_PATH, details)
    raw: bytes = scope.get("query_string", b"")
    if b"%" in raw:
        not_utf8 = [
            {
                "field": f"query.{_field_name(name)}",
                "message": f"the {'value' if _is_utf8(name, plus_is_space=True) else 'name'}"
                " holds a percent-encoding that is not UTF-8 text",
                "type": "invalid_text",
            }
            for name, value in _query_fields(raw)
            if not (_is_utf8(name, plus_is_space=True) and _is_utf8(value, plus_is_space=True))
        ]
        if not_utf8:
            return error_body("validation_error", _NOT_UTF8_IN_QUERY, not_utf8)
    if b"%00" not in raw and NUL.encode() not in raw:  # the only ways a decoded one can hold NUL
        return None
    details = [
        {
            "field": f"query.{name}",
            "message": f"the {'name' if NUL in name else 'value'} holds a NUL character",
            "type": "invalid_text",
        }
        # decoded as a route reads them (Request.query_params)
        for name, value in QueryParams(raw).multi_items()
        if NUL in name or NUL in value
    ]
    return error_body("validation_error", _NUL_IN_QUERY, details) if details else None


class _BodyTooLarge(StarletteHTTPException):
    """Raised by the receive channel once a body passes the limit.

    An HTTPException, because FastAPI turns any other error met while it reads a body (a
    chunked one, which has no Content-Length to refuse up front) into 400 "error parsing
    the body"; this way every route answers 413 ``payload_too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


#: the request methods of HTTP (RFC 9110 and PATCH) the metrics name; any other is "other"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


def method_label(method: str) -> str:
    """The metrics' ``method`` label: the method, or ``other`` for one HTTP does not define.

    A client chooses the method token, and the server takes any (uvicorn's h11 parser, where
    httptools is not installed, takes any token; httptools some thirty WebDAV and other
    methods): each would be a series of its own for every route and status.

    >>> method_label("GET"), method_label("PROPFIND"), method_label("X" * 40)
    ('GET', 'other', 'other')
    """
    return method if method in METHODS else "other"


def _route_label(scope: Scope, routed: bool) -> str:
    """The path template of the route that served a request, for the metrics' `route` label;
    "unmatched" for a path no route serves and for a request refused before routing.

    FastAPI records only its own API routes in ``scope["route"]``: the plain Starlette routes
    of its pages (``/openapi.json``, ``/docs``, ``/docs/oauth2-redirect``, ``/redoc``) are
    found by matching the path again.
    """
    matched = scope.get("route")
    if matched is not None:
        return str(getattr(matched, "path", "unmatched"))
    if routed:
        for route in getattr(scope.get("app"), "routes", ()):
            if isinstance(route, Route) and route.matches(scope)[0] is Match.FULL:
                return route.path
    return "unmatched"


def create_service_app(
    settings: CommonSettings,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    lifespan: Lifespan | None = None,
    readiness: Callable[[], Mapping[str, ReadinessCheck]] | None = None,
    max_body_bytes: int | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    """Build a FastAPI app with the platform's operational endpoints already in place.

    ``readiness`` returns the named checks at request time, so checks can use clients that the
    lifespan creates after the app object exists.
    """
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        # a body not declared JSON: 415 before any other dependency (the token's) runs; an
        # /api/ query parameter not taken or given twice: 422
        dependencies=[Depends(require_json_body), Depends(require_known_query)],
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_query_errors(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    install_dependency_failure_handler(app, settings.dependency_retry_after_s)
    install_metrics_endpoint(app, settings.metrics_token)
    app.add_middleware(
        OperationalMiddleware,
        service=settings.service_name,
        max_body_bytes=max_body_bytes or settings.max_body_bytes,
    )
    _install_probes(app, settings.service_name, readiness)
    return app


def _install_probes(
    app: FastAPI,
    service: str,
    readiness: Callable[[], Mapping[str, ReadinessCheck]] | None,
) -> None:
    """``/healthz`` (the process answers) and ``/readyz`` (every check of ``readiness``
    passes within ``READY_CHECK_TIMEOUT_S``, 3 s; 503 with the same body otherwise, each
    failed check saying why)."""

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: every dependency is reachable",
        response_model=Readiness,
        responses={503: {"description": "not ready: the same body, the failed checks say why"}},
    )
    async def readyz() -> JSONResponse:
        checks = readiness() if readiness else {}
        results: dict[str, str] = {}
        ok = True

        async def run(name: str, check: ReadinessCheck) -> None:
            nonlocal ok
            deadline = asyncio.timeout(READY_CHECK_TIMEOUT_S)
            try:
                async with deadline:
                    await check()
                results[name] = "ok"
            except TimeoutError as exc:
                ok = False
                # the wait's own timeout has no message: say what happened; a timeout of the
                # check's own (a pool checkout, a statement) is named as any other failure
                if deadline.expired():
                    why = f"no answer within {READY_CHECK_TIMEOUT_S:g} s"
                else:
                    why = f"TimeoutError: {exc}".rstrip(": ")
                results[name] = f"down: {why}"[:200]
            except Exception as exc:  # a failed check is a readiness answer, not an error
                ok = False
                results[name] = f"down: {type(exc).__name__}: {exc}"[:200]

        await asyncio.gather(*(run(n, c) for n, c in checks.items()))
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": results},
            status_code=200 if ok else 503,
        )
