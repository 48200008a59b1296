"""Ingest with its Redis (the revocation blocklist) frozen or down: tokens are refused with a
fast 503 ``dependency_unavailable``, never accepted unchecked and never left hanging."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fault_injection import FaultyLink
from support import TokenFactory, llm_call

from finops.common.auth import TokenVerifier, install_verifier
from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

HANG_GUARD_S = 5.0  # not a latency assertion: only a request stuck on a dead server fails


@pytest.mark.parametrize("fault", ["frozen", "down"])
async def test_events_are_refused_while_the_blocklist_cannot_be_read(
    infra_env, tmp_path, fault: str
) -> None:
    redis = await FaultyLink(infra_env.redis_url).start()
    tokens = TokenFactory()
    settings = IngestSettings(data_dir=tmp_path, redis_url=redis.url)
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {tokens.token('bot')}"}
    try:
        async with (
            LifespanManager(app, startup_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ingest"
            ) as client,
        ):
            # The app's own Redis client, with test keys in place of auth's JWKS.
            install_verifier(app, TokenVerifier(settings, app.state.redis, tokens.keys))
            accepted = await client.post("/api/events", json=[llm_call("bot")], headers=headers)
            assert accepted.status_code == 202, accepted.text
            if fault == "frozen":
                redis.freeze()
            else:
                await redis.cut()
            async with asyncio.timeout(HANG_GUARD_S):
                refused = await client.post("/api/events", json=[llm_call("bot")], headers=headers)
    finally:
        await redis.close()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "dependency_unavailable"
    assert int(refused.headers["Retry-After"]) > 0
