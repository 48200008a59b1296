"""``GET /api/healing/circuits`` refuses a filter holding a NUL character, as every service does.

The API runs on an in-memory circuit table; tokens are verified for real (RS256) against a
blocklist that holds nothing.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support import EmptyBlocklist, TokenFactory

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.circuits import CircuitState, CircuitStatus, CircuitTable
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.healer.api.circuits import router


@pytest.fixture(scope="module")
def client() -> TestClient:
    settings = CommonSettings(service_name="healer")
    app = create_service_app(settings, title="healer", description="test")
    app.include_router(router)
    app.state.circuits = table = CircuitTable()
    closed = CircuitState(
        "openai", "gpt-4o", CircuitStatus.CLOSED, 0.0, 5, 0, 60.0, None, None, "", 1e9
    )
    assert table.apply(closed)
    tokens = TokenFactory(settings)
    install_verifier(app, TokenVerifier(settings, EmptyBlocklist(), tokens.keys))
    headers = {"Authorization": f"Bearer {tokens.token('bot', role='agent')}"}
    return TestClient(app, headers=headers, raise_server_exceptions=False)


@pytest.mark.parametrize("field", ["provider", "model"])
def test_a_filter_holding_a_nul_is_422_invalid_text(client: TestClient, field: str) -> None:
    response = client.get("/api/healing/circuits", params={field: "gpt\x00"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "field": f"query.{field}",
            "message": "the value holds a NUL character",
            "type": "invalid_text",
        }
    ]


def test_the_same_filters_without_a_nul_are_answered(client: TestClient) -> None:
    response = client.get("/api/healing/circuits", params={"provider": "openai", "model": "gpt-4o"})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 1


def test_a_filter_given_twice_is_422_not_the_last_one(client: TestClient) -> None:
    # ?state=open&state=closed listed the closed breakers only, silently
    response = client.get("/api/healing/circuits?state=open&state=closed")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {
            "field": "query.state",
            "message": "'state' given more than once",
            "type": "duplicate_parameter",
        }
    ]


def test_a_misspelt_filter_is_422_not_every_breaker(client: TestClient) -> None:
    # ?stat=open listed every breaker, as if no filter had been asked for
    response = client.get("/api/healing/circuits?stat=open&provider=openai")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "'stat' is not a parameter of this endpoint"
    assert error["details"] == [
        {
            "field": "query.stat",
            "message": "'stat' is not a parameter of this endpoint",
            "type": "unknown_parameter",
        }
    ]
