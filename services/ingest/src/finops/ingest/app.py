"""Assembles the ingest service. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from finops.common.health import kafka_check, redis_check
from finops.common.http import create_service_app
from finops.common.kafka import make_producer
from finops.ingest.settings import IngestSettings


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.producer = make_producer(settings)
        await app.state.producer.start()
        app.state.redis = aioredis.from_url(settings.redis_url)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.producer.stop()

    app = create_service_app(
        settings,
        title="FinOps ingest",
        description="Validates agent events and publishes them to Kafka, nothing lost.",
        lifespan=lifespan,
        readiness=lambda: {
            "kafka": lambda: kafka_check(app.state.producer),
            "redis": lambda: redis_check(app.state.redis),
        },
    )
    app.state.settings = settings
    return app
