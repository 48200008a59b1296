from __future__ import annotations

import json
from typing import Annotated

import pytest
from fastapi import FastAPI, Form
from fastapi.testclient import TestClient
from pydantic import BaseModel

from finops.common.error_handlers import install_error_handlers
from finops.common.errors import Conflict
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.common.topics import ALL_TOPICS, PRIMARY_TOPICS, TOPICS_BY_NAME


def test_topic_registry_has_every_topic_once_with_a_dlq_for_consumed_ones():
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    for topic in PRIMARY_TOPICS:
        assert (topic.dlq in TOPICS_BY_NAME) is topic.consumed
    assert TOPICS_BY_NAME["finops.circuits.v1"].config() == {"cleanup.policy": "compact"}
    assert TOPICS_BY_NAME["agent.cost.v1"].config()["retention.ms"] == str(7 * 86_400_000)


def test_placeholder_secrets_are_refused():
    with pytest.raises(ValueError, match="placeholder"):
        CommonSettings(kafka_sasl_password="changeme")


class Item(BaseModel):
    n: int


def _app(max_body: int = 100) -> FastAPI:
    app = create_service_app(
        CommonSettings(service_name="t"), title="t", description="t", max_body_bytes=max_body
    )

    @app.post("/items")
    async def items(item: Item) -> dict[str, int]:
        return {"n": item.n}

    @app.post("/conflict")
    async def conflict() -> None:
        raise Conflict("already there", details={"field": "username"})

    return app


def test_errors_share_one_shape():
    client = TestClient(_app())
    bad = client.post("/items", json={"n": "x"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"
    assert bad.json()["error"]["details"][0]["field"] == "n"
    broken = client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    conflict = client.post("/conflict")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": {"code": "conflict", "message": "already there", "details": {"field": "username"}}
    }


def test_oversized_bodies_get_413_before_parsing():
    client = TestClient(_app(max_body=100))
    resp = client.post(
        "/items",
        content=json.dumps({"n": 1, "pad": "x" * 200}),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"
    ok = client.post("/items", json={"n": 7})
    assert ok.json() == {"n": 7}


def test_a_chunked_body_over_the_limit_gets_413_too():
    app = _app(max_body=100)

    @app.post("/form")
    async def form(name: Annotated[str, Form()]) -> dict[str, str]:
        return {"name": name}

    client = TestClient(app)

    def chunks(text: bytes):  # no Content-Length: the limit applies while the body arrives
        yield from (text[i : i + 50] for i in range(0, len(text), 50))

    for path, content_type, body in (
        ("/items", "application/json", json.dumps({"n": 1, "pad": "x" * 200}).encode()),
        ("/form", "application/x-www-form-urlencoded", b"name=" + b"x" * 200),
    ):
        resp = client.post(path, content=chunks(body), headers={"content-type": content_type})
        assert "content-length" not in resp.request.headers
        assert resp.status_code == 413, (path, resp.text)
        assert resp.json()["error"] == {
            "code": "payload_too_large",
            "message": "request body exceeds 100 bytes",
            "details": None,
        }
    small = client.post(
        "/form",
        content=chunks(b"name=ok"),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert small.json() == {"name": "ok"}


def test_unhandled_errors_become_500_in_the_same_shape():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    resp = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal_error"
    assert "secret" not in resp.text
