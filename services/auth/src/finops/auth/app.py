"""Assembles the auth service. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI

from finops.auth.settings import AuthSettings
from finops.common.health import postgres_check, redis_check
from finops.common.http import create_service_app


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
        app.state.redis = aioredis.from_url(settings.redis_url)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.db.close()

    app = create_service_app(
        settings,
        title="FinOps auth",
        description="Users, tokens (RS256 + JWKS), API keys and the token blocklist.",
        lifespan=lifespan,
        readiness=lambda: {
            "postgres": lambda: postgres_check(app.state.db),
            "redis": lambda: redis_check(app.state.redis),
        },
    )
    app.state.settings = settings
    return app
