"""The auth service on the session's real PostgreSQL and Redis, reached in-process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from auth_helpers import Accounts, asgi_client
from fastapi import FastAPI
from support import own_database

from finops.auth.app import create_app
from finops.auth.settings import AuthSettings
from finops.common.auth import InvalidToken, TokenVerifier


@pytest.fixture(scope="session")
def auth_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-data")


@pytest.fixture(scope="session")
def make_auth_settings(infra: Any, auth_data_dir: Path) -> Callable[..., AuthSettings]:
    def make(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "database_url": infra.database_url,
            "redis_url": infra.redis_url,
            "kafka_bootstrap": infra.kafka_bootstrap,
            "data_dir": auth_data_dir,
            "environment": "test",
            "key_reload_seconds": 0.2,
            # Tests share one client address; the per-address limits have their own tests.
            "login_max_failures_per_address": 100_000,
            "registration_max_per_address": 100_000,
        }
        values.update(overrides)
        return AuthSettings(**values)

    return make


@pytest.fixture(scope="module")
async def auth_app(make_auth_settings: Callable[..., AuthSettings]) -> AsyncIterator[FastAPI]:
    app = create_app(make_auth_settings())
    async with LifespanManager(app, startup_timeout=60):
        yield app


@pytest.fixture(scope="module")
async def client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(auth_app) as http:
        yield http


@pytest.fixture(scope="module")
def accounts(auth_app: FastAPI, client: httpx.AsyncClient) -> Accounts:
    return Accounts(auth_app, client)


@pytest.fixture
async def elsewhere(auth_app: FastAPI, infra: Any) -> AsyncIterator[Callable[..., Any]]:
    """Answers "does another service accept this access token?" with a verifier built the way
    every other service builds one: its own Redis connection, auth's public keys."""
    redis = aioredis.from_url(infra.redis_url)
    verifier = TokenVerifier(auth_app.state.settings, redis, auth_app.state.keys.verification_keys)

    async def accepts(token: str) -> bool:
        try:
            await verifier.verify(token)
        except InvalidToken:
            return False
        return True

    yield accepts
    await redis.aclose()


@pytest.fixture
async def scratch_database(infra: Any) -> AsyncIterator[str]:
    """The URL of a database of its own, dropped afterwards (nothing migrated yet)."""
    async with own_database(infra.database_url, "auth_scratch") as url:
        yield url
