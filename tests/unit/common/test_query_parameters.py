"""Every ``/api/`` endpoint of every service refuses a query parameter it does not take, or
one it takes once given twice (``finops.common.request_checks.require_known_query``), and
declares that 422 in its OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from finops.auth.app import create_app as auth_app
from finops.common.api_errors import EXTENSION, FREE_QUERY, UNKNOWN_QUERY
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.experiments.app import create_app as experiments_app
from finops.healer.app import create_app as healer_app
from finops.ingest.app import create_app as ingest_app
from finops.optimizer.app import create_app as optimizer_app

FACTORIES = [auth_app, ingest_app, optimizer_app, healer_app, experiments_app]


def _page(offset: int = 0) -> int:
    return offset


def _app() -> FastAPI:
    app = create_service_app(CommonSettings(service_name="t"), title="t", description="t")

    @app.get("/api/items")
    async def items(
        page: Annotated[int, Depends(_page)],
        kind: str | None = None,
        tag: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, Any]:
        return {"kind": kind, "tag": tag, "offset": page}

    @app.get("/api/free", openapi_extra={FREE_QUERY: True})
    async def free(kind: str | None = None) -> dict[str, Any]:
        return {"kind": kind}

    @app.get("/other")
    async def other() -> dict[str, Any]:
        return {}

    return app


def _details(resp: Any) -> list[tuple[str, str]]:
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    return [(d["field"], d["type"]) for d in resp.json()["error"]["details"]]


def test_declared_parameters_of_the_route_and_its_dependencies_are_taken() -> None:
    client = TestClient(_app())
    resp = client.get("/api/items?kind=a&offset=3&tag=x&tag=y")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"kind": "a", "tag": ["x", "y"], "offset": 3}


def test_unknown_and_repeated_parameters_are_each_named() -> None:
    client = TestClient(_app())
    resp = client.get("/api/items?knd=a&kind=a&kind=b&kind=c&knd=b&offset=1&offset=2")
    assert _details(resp) == [
        ("query.knd", "unknown_parameter"),
        ("query.kind", "duplicate_parameter"),
        ("query.offset", "duplicate_parameter"),
    ]
    assert resp.json()["error"]["message"] == "invalid query parameters"


def test_a_free_route_takes_other_parameters_but_not_its_own_twice() -> None:
    client = TestClient(_app())
    assert client.get("/api/free?kind=a&x=1&y=2").json() == {"kind": "a"}
    assert _details(client.get("/api/free?kind=a&kind=b")) == [
        ("query.kind", "duplicate_parameter")
    ]


def test_routes_outside_api_are_left_alone() -> None:
    assert TestClient(_app()).get("/other?x=1").status_code == 200
    assert TestClient(_app()).get("/healthz?x=1").status_code == 200


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_api_endpoint_declares_the_422(factory: Any) -> None:
    openapi = factory().openapi()
    row = {"code": UNKNOWN_QUERY.code, "when": UNKNOWN_QUERY.when}
    missing = [
        f"{method.upper()} {path}"
        for path, operations in openapi["paths"].items()
        if path.startswith("/api/")
        for method, operation in operations.items()
        if row not in operation["responses"].get("422", {}).get(EXTENSION, [])
    ]
    assert missing == []


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_schema_of_the_openapi_document_has_a_name_of_its_own(factory: Any) -> None:
    # the healer's request model ErrorInfo (an agent.error's error) and the error answers'
    # ErrorInfo shared a name: pydantic called them ErrorInfo-Input and ErrorInfo-Output,
    # one model to a client generator
    names = factory().openapi()["components"]["schemas"]
    assert [n for n in names if n.endswith(("-Input", "-Output"))] == []
