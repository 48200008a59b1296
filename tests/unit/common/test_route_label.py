"""The `route` label of the HTTP metrics names the route that answered (docs/metrics.md)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from finops.common.http import create_service_app
from finops.common.settings import CommonSettings

SERVICE = "route-label-test"


def _count(route: str, method: str, status: int) -> float:
    labels = {"service": SERVICE, "route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("finops_http_requests_total", labels) or 0.0


def _client() -> TestClient:
    app = create_service_app(
        CommonSettings(service_name=SERVICE), title="t", description="t", max_body_bytes=100
    )

    @app.post("/items/{item_id}")
    async def items(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    return TestClient(app)


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"])
def test_fastapis_own_pages_are_labelled_with_their_path_not_unmatched(path):
    before = _count(path, "GET", 200)
    assert _client().get(path).status_code == 200
    assert _count(path, "GET", 200) == before + 1


def test_a_route_template_labels_its_requests():
    before = _count("/items/{item_id}", "POST", 200)
    assert _client().post("/items/a1").status_code == 200
    assert _count("/items/{item_id}", "POST", 200) == before + 1


def test_unserved_paths_and_refusals_before_routing_are_unmatched():
    client = _client()
    before = (
        _count("unmatched", "GET", 404),
        _count("unmatched", "POST", 413),
        _count("unmatched", "GET", 422),
    )
    assert client.get("/nowhere").status_code == 404
    too_large = client.post(
        "/items/a1", content=b"x" * 101, headers={"content-type": "application/json"}
    )
    assert too_large.status_code == 413
    assert client.get("/items/a%00b").status_code == 422
    assert (
        _count("unmatched", "GET", 404),
        _count("unmatched", "POST", 413),
        _count("unmatched", "GET", 422),
    ) == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_a_method_http_does_not_define_is_labelled_other():
    """The client picks the method token: each unknown one must not be a series of its own."""
    client = _client()
    before = (_count("/items/{item_id}", "other", 405), _count("unmatched", "other", 404))
    for method in ("PROPFIND", "PURGE", "BREW-1", "BREW-2"):
        client.request(method, "/items/a1")
    client.request("BREW-3", "/nowhere")
    assert (_count("/items/{item_id}", "other", 405), _count("unmatched", "other", 404)) == (
        before[0] + 4,
        before[1] + 1,
    )
    assert _count("/items/{item_id}", "BREW-1", 405) == 0.0
    assert _count("/items/{item_id}", "PROPFIND", 405) == 0.0
