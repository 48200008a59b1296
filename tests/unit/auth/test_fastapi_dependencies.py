"""CurrentPrincipal and require_scope in a service app: 401s and 403s in the platform shape."""

from __future__ import annotations

from typing import Annotated

import pytest
from auth_fakes import FakeRedis
from fastapi import Depends
from fastapi.testclient import TestClient

from finops.common.auth import (
    CurrentPrincipal,
    Principal,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    generate_signing_key,
    install_verifier,
    require_scope,
)
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings


@pytest.fixture(scope="module")
def setup():
    key = generate_signing_key()
    settings = CommonSettings(service_name="svc")
    app = create_service_app(settings, title="svc", description="svc")
    install_verifier(app, TokenVerifier(settings, FakeRedis(), StaticKeys.of(key)))

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"username": principal.username}

    @app.post("/events")
    async def events(
        principal: Annotated[Principal, Depends(require_scope("events:write"))],
    ) -> dict[str, str]:
        return {"by": principal.sub}

    signer = TokenSigner(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    return TestClient(app), signer


def token(signer, scopes) -> dict[str, str]:
    issued = signer.issue(subject="u9", username="bot", role="agent", scopes=scopes)
    return {"Authorization": f"Bearer {issued.token}"}


def test_a_valid_token_reaches_the_route(setup):
    client, signer = setup
    assert client.get("/me", headers=token(signer, [])).json() == {"username": "bot"}
    response = client.post("/events", headers=token(signer, ["events:write"]))
    assert response.json() == {"by": "u9"}


def test_a_request_without_a_bearer_token_gets_a_challenge_with_no_error_code(setup):
    # RFC 6750 section 3.1: a request that lacks authentication gets no error code in its
    # challenge (it said error="invalid_token", as if a token had been sent and refused).
    client, _ = setup
    for headers in ({}, {"Authorization": "Token x"}, {"Authorization": "Bearer "}):
        response = client.get("/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_bearer_token_is_401_with_an_invalid_token_challenge(setup):
    client, signer = setup
    expired = signer.issue(subject="u9", username="bot", role="agent", scopes=[], ttl_seconds=-60)
    for token in ("nope", expired.token):
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["error"]["code"] == "invalid_token"


def test_a_missing_scope_is_403_insufficient_scope(setup):
    client, signer = setup
    response = client.post("/events", headers=token(signer, ["healing:read"]))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "insufficient_scope",
        "message": "this call needs the scope 'events:write'",
        "details": {"required_scope": "events:write"},
    }
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="events:write"'
    )


def test_require_scope_returns_one_dependency_per_scope():
    assert require_scope("events:write") is require_scope("events:write")
    assert require_scope("events:write") is not require_scope("stats:read")
