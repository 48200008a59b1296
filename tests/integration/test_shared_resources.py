"""The lifespan part every service shares: PostgreSQL, Redis and the token verifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from support import TokenFactory

from finops.common.auth import TokenVerifier, installed_verifier
from finops.common.datastores import redis_client
from finops.common.lifespan import shared_resources, with_shared_resources
from finops.common.settings import CommonSettings

pytestmark = pytest.mark.integration


class RecordedVerifier(TokenVerifier):
    def __init__(self, closed: list[str], *args: Any) -> None:
        super().__init__(*args)
        self.closed = closed

    async def aclose(self) -> None:
        self.closed.append("verifier")
        await super().aclose()


async def test_shared_resources_open_both_datastores_install_the_given_verifier_and_close(
    infra_env,
):
    settings = CommonSettings(service_name="t")
    app, closed = FastAPI(), list[str]()
    given_redis = redis_client(settings)
    given = RecordedVerifier(closed, settings, given_redis, TokenFactory(settings).keys)
    async with shared_resources(app, settings, postgres_pool_size=2, verifier=given):
        assert installed_verifier(app) is given
        assert await app.state.db.fetchval("SELECT 41 + 1") == 42
        assert await app.state.redis.ping() is True
        pool = app.state.db
        assert not pool.is_closing()
    assert (closed, pool.is_closing()) == (["verifier"], True)
    await given_redis.aclose()


async def test_without_a_verifier_one_is_built_on_the_opened_redis_with_the_given_keys(
    infra_env,
):
    settings = CommonSettings(service_name="t")
    app, keys = FastAPI(), TokenFactory(settings).keys
    async with shared_resources(app, settings, keys=keys):
        built = installed_verifier(app)
        assert (built.keys, built.redis) == (keys, app.state.redis)
        assert not hasattr(app.state, "db")


async def test_a_service_s_own_resources_open_after_the_shared_ones_and_close_before(infra_env):
    settings = CommonSettings(service_name="t")
    app, seen = FastAPI(), list[object]()

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        seen.append(await app.state.redis.ping())
        yield
        seen.append(app.state.db.is_closing())

    lifespan = with_shared_resources(own, settings, postgres_pool_size=1)
    async with lifespan(app):
        seen.append("serving")
    assert seen == [True, "serving", False]
    assert app.state.db.is_closing()
