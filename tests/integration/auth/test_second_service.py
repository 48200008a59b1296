"""Another service verifies auth's tokens over the network: JWKS, logout, scopes, rotation.

Auth runs under uvicorn on a free port; the second service is a minimal app built the way
every service of the platform is (create_service_app + install_verifier + CurrentPrincipal).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from auth_helpers import PASSWORD, bearer, claims_of, unique_name
from fastapi import Depends
from support import wait_until
from typer.testing import CliRunner

from finops.auth.app import create_app
from finops.cli.main import app as finops_cli
from finops.cli.stack.ports import free_port
from finops.common.auth import (
    CurrentPrincipal,
    Principal,
    TokenVerifier,
    install_verifier,
    require_scope,
)
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def auth_server(make_auth_settings, tmp_path_factory):
    port = free_port()
    settings = make_auth_settings(
        port=port, data_dir=tmp_path_factory.mktemp("auth-keys"), key_reload_seconds=0.1
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), 30, "auth under uvicorn")
    assert server.started, task
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def auth_http(auth_server):
    async with httpx.AsyncClient(base_url=auth_server[0], timeout=10) as http:
        yield http


class SecondService:
    def __init__(self, auth_url: str, redis_url: str, **jwks_settings: float) -> None:
        """``jwks_settings``: ``jwks_cache_seconds`` / ``jwks_min_refetch_seconds``, else the
        platform's defaults."""
        settings = CommonSettings(
            service_name="second", auth_url=auth_url, redis_url=redis_url, **jwks_settings
        )
        self.redis = aioredis.from_url(redis_url)
        self.verifier = TokenVerifier(settings, self.redis)
        app = create_service_app(settings, title="second", description="verifies tokens")
        install_verifier(app, self.verifier)

        @app.get("/whoami")
        async def whoami(principal: CurrentPrincipal) -> dict[str, object]:
            return {"sub": principal.sub, "username": principal.username, "role": principal.role}

        @app.post("/events")
        async def events(
            principal: Annotated[Principal, Depends(require_scope("events:write"))],
        ) -> dict[str, str]:
            return {"accepted_for": principal.username}

        @app.get("/admin-only")
        async def admin_only(
            principal: Annotated[Principal, Depends(require_scope("users:write"))],
        ) -> dict[str, str]:
            return {"admin": principal.username}

        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://second"
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.verifier.aclose()
        await self.redis.aclose()


@pytest.fixture
async def second(auth_server, infra):
    # A long cache: the tests below count JWKS fetches.
    service = SecondService(
        auth_server[0], infra.redis_url, jwks_min_refetch_seconds=0.0, jwks_cache_seconds=300
    )
    yield service
    await service.aclose()


async def register_and_login(auth_http: httpx.AsyncClient) -> tuple[str, str]:
    username = unique_name()
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    assert (await auth_http.post("/api/auth/register", json=body)).status_code == 201
    login = await auth_http.post("/api/auth/login", json={"login": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return username, login.json()["access_token"]


async def test_a_logged_out_token_is_refused_by_another_service(auth_http, second):
    username, token = await register_and_login(auth_http)
    whoami = await second.http.get("/whoami", headers=bearer(token))
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["username"] == username
    assert whoami.json()["role"] == "agent"
    assert (await second.http.post("/events", headers=bearer(token))).json() == {
        "accepted_for": username
    }

    assert (await auth_http.post("/api/auth/logout", headers=bearer(token))).status_code == 204

    refused = await second.http.get("/whoami", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert refused.json()["error"]["code"] == "invalid_token"
    assert (await second.http.post("/events", headers=bearer(token))).status_code == 401
    assert second.verifier.keys.fetches == 1  # the JWKS was fetched once and cached


async def test_a_missing_scope_is_403_insufficient_scope(auth_http, second):
    _, token = await register_and_login(auth_http)
    response = await second.http.get("/admin-only", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert response.json()["error"]["details"] == {"required_scope": "users:write"}
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    anonymous = await second.http.get("/admin-only")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"  # no token, no error code


async def test_unknown_kids_cannot_make_the_verifier_hammer_auth(auth_server, infra):
    from finops.common.auth import TokenSigner, generate_signing_key

    service = SecondService(
        auth_server[0], infra.redis_url, jwks_min_refetch_seconds=60, jwks_cache_seconds=300
    )
    try:
        for _ in range(5):
            forged = TokenSigner(generate_signing_key(), issuer="finops-auth", audience="finops")
            token = forged.issue(subject="x", username="x", role="admin", scopes=["users:write"])
            response = await service.http.get("/whoami", headers=bearer(token.token))
            assert response.status_code == 401
        assert service.verifier.keys.fetches == 1
    finally:
        await service.aclose()


def rotate(data_dir) -> str:
    result = CliRunner().invoke(
        finops_cli, ["keys", "rotate"], env={"FINOPS_DATA_DIR": str(data_dir)}
    )
    assert result.exit_code == 0, result.output
    return result.output


async def kids(auth_http: httpx.AsyncClient) -> list[str]:
    return [key["kid"] for key in (await auth_http.get("/.well-known/jwks.json")).json()["keys"]]


async def test_key_rotation_reaches_every_service(auth_server, auth_http, second):
    _, settings = auth_server
    _, old_token = await register_and_login(auth_http)
    old_kid = claims_of(old_token)[0]["kid"]
    assert (await second.http.get("/whoami", headers=bearer(old_token))).status_code == 200

    output = await asyncio.to_thread(rotate, settings.data_dir)
    assert "new signing key" in output
    await wait_until(lambda: _has_two_keys(auth_http, old_kid), 10, "auth to publish the new key")
    new_kid = (await kids(auth_http))[0]
    _, new_token = await register_and_login(auth_http)
    assert claims_of(new_token)[0]["kid"] == new_kid != old_kid
    # The second service has never seen the new kid: it refetches the JWKS and accepts it.
    assert (await second.http.get("/whoami", headers=bearer(new_token))).status_code == 200
    # Tokens signed before the rotation keep working: the previous key is still published.
    assert (await second.http.get("/whoami", headers=bearer(old_token))).status_code == 200

    await asyncio.to_thread(rotate, settings.data_dir)
    await wait_until(
        lambda: _kids_are(auth_http, lambda ks: old_kid not in ks and new_kid in ks),
        10,
        "auth to drop the oldest key",
    )
    _, newest_token = await register_and_login(auth_http)
    assert (await second.http.get("/whoami", headers=bearer(newest_token))).status_code == 200
    refused = await second.http.get("/whoami", headers=bearer(old_token))
    assert refused.status_code == 401
    assert "unknown key" in refused.json()["error"]["message"]


async def _has_two_keys(auth_http, old_kid) -> bool:
    current = await kids(auth_http)
    return len(current) == 2 and current[1] == old_kid


async def _kids_are(auth_http, predicate) -> bool:
    return predicate(await kids(auth_http))


async def test_a_key_rotated_out_is_refused_by_every_service_within_seconds(
    auth_server, auth_http, infra
):
    """With the platform's default JWKS settings, and no token ever naming a newer key (which
    would make the service refetch anyway): only the cache's own expiry can drop the key."""
    _, settings = auth_server
    service = SecondService(auth_server[0], infra.redis_url)
    try:
        _, old_token = await register_and_login(auth_http)
        old_kid = claims_of(old_token)[0]["kid"]
        assert (await service.http.get("/whoami", headers=bearer(old_token))).status_code == 200
        await asyncio.to_thread(rotate, settings.data_dir)
        await wait_until(
            lambda: _kids_are(auth_http, lambda ks: ks[0] != old_kid), 10, "a new current key"
        )
        await asyncio.to_thread(rotate, settings.data_dir)  # drops old_kid from the JWKS
        await wait_until(
            lambda: _kids_are(auth_http, lambda ks: old_kid not in ks), 10, "the old key gone"
        )

        async def refused() -> bool:
            response = await service.http.get("/whoami", headers=bearer(old_token))
            return response.status_code == 401

        await wait_until(refused, 15, "the second service to refuse the removed key")
        response = await service.http.get("/whoami", headers=bearer(old_token))
        assert "unknown key" in response.json()["error"]["message"]
    finally:
        await service.aclose()
