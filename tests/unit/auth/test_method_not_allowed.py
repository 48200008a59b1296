"""405 answers name every method the path has, not only the first route's (RFC 9110 §15.5.6)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from finops.auth.app import create_app
from finops.auth.settings import AuthSettings


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No lifespan: routing and error handling need neither PostgreSQL nor Redis.
    return TestClient(create_app(AuthSettings(environment="test")))


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/auth/api-keys", "GET, POST"),  # two routes share the path
        ("PUT", "/api/auth/api-keys", "GET, POST"),
        ("GET", "/api/auth/login", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_405_lists_every_method_of_the_path(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.json()["error"]["details"] == {"allowed_methods": allowed.split(", ")}
