"""The requests every service refuses before a route runs: a body the endpoint would not parse
(its ``Content-Type`` is not the endpoint's), and a query parameter the endpoint does not take
or one it takes once given twice. Each is an app-wide dependency (:mod:`finops.common.http`);
the errors they answer are rows of :mod:`finops.common.api_errors`.
"""

from __future__ import annotations

import email.message
import functools
from typing import Any

from fastapi import Request, params
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from finops.common.api_errors import API_PREFIX, EXTENSION, FREE_QUERY, UNKNOWN_QUERY
from finops.common.errors import FORM_MEDIA_TYPE, UnsupportedMediaType, ValidationFailed


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
