"""A body that is not JSON gets the same answer from every endpoint of every service that reads
one: 400 ``invalid_json`` saying where the syntax error is (``details: {line, column, reason}``),
whether FastAPI decoded the body (auth, optimizer, healer, experiments) or the service read the
raw bytes itself (ingest). The shape is documented in README.md and each error table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import TokenFactory

from finops.auth.app import create_app as auth_app
from finops.common.auth import TokenVerifier, install_verifier
from finops.common.auth.scopes import ALL_SCOPES
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


class EmptyBlocklist:
    async def mget(self, keys: list[str]) -> list[None]:
        return [None] * len(keys)


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


@pytest.mark.parametrize("service", FACTORIES)
def test_a_body_python_cannot_read_for_its_integer_limit_is_a_400_not_a_500(service: str) -> None:
    # Python refuses integers over 4,300 digits with a bare ValueError; the trailing comma
    # makes pydantic's parser refuse the body first in ingest, which then locates the error
    body = b"[" + b"1" * 5000 + b",]"
    client = _client(service)
    for method, url in _json_body_endpoints(client.app):
        response = client.request(method, url, content=body, headers=HEADERS)
        error = response.json()["error"]
        assert (url, response.status_code) == (url, 400)
        if service == "ingest":
            assert error["details"] == {"line": 1, "column": 4303, "reason": "number out of range"}
        else:  # FastAPI's own answer to a body it cannot decode
            assert error["code"] == "bad_request"
