"""A body that is not JSON gets the same answer from every endpoint of every service that reads
one: 400 ``invalid_json`` saying where the syntax error is (``details: {line, column, reason}``),
whether FastAPI decoded the body (auth, optimizer, healer, experiments) or the service read the
raw bytes itself (ingest). The shape is documented in README.md and each error table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, File, Form
from fastapi.testclient import TestClient
from support import EmptyBlocklist, TokenFactory

from finops.auth.app import create_app as auth_app
from finops.common.auth import TokenVerifier, install_verifier
from finops.common.auth.scopes import ALL_SCOPES
from finops.common.request_checks import reads_form_body
from finops.common.settings import CommonSettings
from finops.experiments.app import create_app as experiments_app
from finops.healer.app import create_app as healer_app
from finops.ingest.app import create_app as ingest_app
from finops.optimizer.app import create_app as optimizer_app

FACTORIES: dict[str, Callable[[], FastAPI]] = {
    "auth": auth_app,
    "ingest": ingest_app,
    "optimizer": optimizer_app,
    "healer": healer_app,
    "experiments": experiments_app,
}
TOKENS = TokenFactory(CommonSettings())
HEADERS = {
    "Authorization": f"Bearer {TOKENS.token('ops', role='admin', scopes=ALL_SCOPES)}",
    "Content-Type": "application/json",
}


def _client(service: str) -> TestClient:
    # No lifespan: nothing behind the API is reached by a body that does not parse.
    app = FACTORIES[service]()
    install_verifier(app, TokenVerifier(CommonSettings(), EmptyBlocklist(), TOKENS.keys))
    app.state.publisher = None  # ingest's, never used for a refused batch
    return TestClient(app, raise_server_exceptions=False)


def _json_body_endpoints(app: Any) -> list[tuple[str, str]]:
    """(method, url) of every endpoint whose body is JSON; path parameters filled in."""
    out = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                url = "/".join("x" if p.startswith("{") else p for p in path.split("/"))
                out.append((method.upper(), url))
    return out


#: a body, and where Python's JSON parser stops reading it
BROKEN = [
    (b"{not json", 1, 2, "Expecting property name enclosed in double quotes"),
    (b'{"a": 1,\n "b": }', 2, 7, "Expecting value"),
    (b'[{"a": 1}', 1, 10, "Expecting ',' delimiter"),
    (b'{"a": 1} trailing', 1, 10, "Extra data"),
]


@pytest.mark.parametrize("service", FACTORIES)
@pytest.mark.parametrize(
    ("body", "line", "column", "reason"), BROKEN, ids=["key", "value", "unclosed", "trailing"]
)
def test_every_service_says_where_a_body_stops_being_json(
    service: str, body: bytes, line: int, column: int, reason: str
) -> None:
    client = _client(service)
    endpoints = _json_body_endpoints(client.app)
    assert endpoints, f"{service} has no endpoint with a JSON body"
    expected = {
        "error": {
            "code": "invalid_json",
            "message": f"request body is not valid JSON: {reason} at line {line} column {column}",
            "details": {"line": line, "column": column, "reason": reason},
        }
    }
    for method, url in endpoints:
        response = client.request(method, url, content=body, headers=HEADERS)
        assert (method, url, response.status_code, response.json()) == (
            method,
            url,
            400,
            expected,
        )


def test_an_error_the_parser_does_not_locate_is_named_without_a_place(monkeypatch):
    from finops.common import errors

    unlocated = {"line": None, "column": None, "reason": "an unusual message"}
    monkeypatch.setattr(errors, "json_syntax_error", lambda body: unlocated)
    error = errors.InvalidJson.of(b"{")
    assert error.message == "request body is not valid JSON: an unusual message"
    assert error.details == unlocated


#: bodies Python's parser cannot read at all (FastAPI once answered them 400 ``bad_request``
#: "There was an error parsing the body"), and where pydantic's parser stops reading them
UNREADABLE = [
    # not UTF-8: the byte 0xff in a string (pydantic's column counts bytes)
    (b'{"a": "\xff"}', 1, 8, "invalid unicode code point"),
    # an integer over Python's 4,300 digits: a bare ValueError (the trailing comma makes
    # pydantic's parser refuse the body first)
    (b"[" + b"1" * 5000 + b",]", 1, 4303, "number out of range"),
]


@pytest.mark.parametrize("service", FACTORIES)
@pytest.mark.parametrize(
    ("body", "line", "column", "reason"), UNREADABLE, ids=["not_utf8", "integer_limit"]
)
def test_every_service_answers_a_body_python_cannot_read_as_ingest_does(
    service: str, body: bytes, line: int, column: int, reason: str
) -> None:
    test_every_service_says_where_a_body_stops_being_json(service, body, line, column, reason)


#: bodies a JSON endpoint is sent with a Content-Type that is not JSON (None: no header):
#: ``curl -d hello``, ``-H 'content-type: text/plain'``, even valid JSON labelled as text
NOT_DECLARED_JSON = [
    ("application/x-www-form-urlencoded", b"hello"),
    ("text/plain", b"hello"),
    ("text/plain; charset=utf-8", b'{"username": "alice"}'),
    (None, b"hello"),
]


@pytest.mark.parametrize("service", FACTORIES)
@pytest.mark.parametrize(
    ("content_type", "body"), NOT_DECLARED_JSON, ids=["form", "text", "json-as-text", "none"]
)
def test_every_service_refuses_a_body_not_declared_json_with_415(
    service: str, content_type: str | None, body: bytes
) -> None:
    client = _client(service)
    headers = {"Authorization": HEADERS["Authorization"]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    received = "no Content-Type" if content_type is None else f"Content-Type {content_type}"
    expected = {
        "error": {
            "code": "unsupported_media_type",
            "message": "the body must be JSON, sent with Content-Type: application/json "
            f"(received {received})",
            "details": {"expected": "application/json", "received": content_type},
        }
    }
    endpoints = _json_body_endpoints(client.app)
    assert endpoints, f"{service} has no endpoint with a JSON body"
    for method, url in endpoints:
        response = client.request(method, url, content=body, headers=headers)
        assert (method, url, response.status_code, response.json()) == (
            method,
            url,
            415,
            expected,
        )


@pytest.mark.parametrize("service", FACTORIES)
def test_every_endpoint_with_a_json_or_form_body_declares_415_and_no_other_does(
    service: str,
) -> None:
    document = FACTORIES[service]().openapi()
    declared = {
        (method.upper(), path): "415" in operation.get("responses", {})
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    with_body = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if {"application/json", FORM} & set(operation.get("requestBody", {}).get("content", {}))
    }
    assert with_body
    assert {endpoint for endpoint, says in declared.items() if says} == with_body


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"username": "alice"}'),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("text/plain", b"grant_type=magic"),
        (None, b"grant_type=magic"),
    ],
    ids=["json", "multipart", "text", "none"],
)
def test_the_form_endpoint_refuses_a_body_not_form_encoded_with_415(
    content_type: str | None, body: bytes
) -> None:
    # a JSON body was read as an empty form: 400 "username is required" though one was sent
    client = _client("auth")
    client.app.state.auth_service = None  # not reached
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post("/api/auth/token", content=body, headers=headers)
    received = "no Content-Type" if content_type is None else f"Content-Type {content_type}"
    assert (response.status_code, response.json()) == (
        415,
        {
            "error": {
                "code": "unsupported_media_type",
                "message": f"the body must be form-encoded, sent with Content-Type: {FORM} "
                f"(received {received})",
                "details": {"expected": FORM, "received": content_type},
            }
        },
    )


def test_the_form_endpoints_415_names_the_form_type_in_its_openapi_answers() -> None:
    operation = FACTORIES["auth"]().openapi()["paths"]["/api/auth/token"]["post"]
    [row] = operation["responses"]["415"]["x-error-codes"]
    assert row["code"] == "unsupported_media_type"
    assert FORM in row["when"] and "`application/json`" not in row["when"]
    # a form body is never parsed as JSON: no invalid_json among its 400s (register has it)
    token_400s = [r["code"] for r in operation["responses"]["400"]["x-error-codes"]]
    assert "invalid_json" not in token_400s and "unsupported_grant_type" in token_400s
    register = FACTORIES["auth"]().openapi()["paths"]["/api/auth/register"]["post"]
    assert "invalid_json" in [r["code"] for r in register["responses"]["400"]["x-error-codes"]]


def test_a_form_endpoint_still_takes_its_form_body() -> None:
    # OAuth2's token endpoint is form-encoded: the unknown grant type is refused by the route
    client = _client("auth")
    client.app.state.auth_service = None  # not reached for an unknown grant type
    response = client.post("/api/auth/token", data={"grant_type": "magic"})
    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "unsupported_grant_type",
    )


@pytest.mark.parametrize("service", FACTORIES)
@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.finops+json"],
)
def test_every_service_reads_a_body_declared_json_in_any_spelling(
    service: str, content_type: str
) -> None:
    """Declared JSON with a charset, in capitals or as a ``+json`` type: read as JSON (a
    broken one is then 400 invalid_json, never 415)."""
    client = _client(service)
    headers = {"Authorization": HEADERS["Authorization"], "Content-Type": content_type}
    for method, url in _json_body_endpoints(client.app):
        response = client.request(method, url, content=b"{not json", headers=headers)
        assert (method, url, response.status_code, response.json()["error"]["code"]) == (
            method,
            url,
            400,
            "invalid_json",
        )


def test_a_multipart_upload_is_not_taken_for_a_form_body() -> None:
    """FastAPI's ``File`` is a kind of ``Form``: only a URL-encoded form body is a form
    endpoint's (a future upload route must not answer its multipart body with 415)."""
    app = FastAPI()

    @app.post("/upload")
    async def upload(data: Annotated[bytes, File()]) -> None: ...

    @app.post("/form")
    async def form(name: Annotated[str, Form()]) -> None: ...

    routes = {route.path: route for route in app.routes if hasattr(route, "body_field")}
    assert (reads_form_body(routes["/upload"]), reads_form_body(routes["/form"])) == (False, True)
