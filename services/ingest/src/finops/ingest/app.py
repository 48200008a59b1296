"""Assembles the ingest service. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from finops.common.auth import TokenVerifier
from finops.common.events.pricing import warm_up
from finops.common.health import redis_check
from finops.common.http import create_service_app
from finops.common.lifespan import with_shared_resources
from finops.ingest.adapters.publisher import KafkaPublisher
from finops.ingest.api.routes import router, use_batch_limit
from finops.ingest.settings import IngestSettings


def create_app(
    settings: IngestSettings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The ingest app; ``verifier`` replaces the token verifier built on startup."""
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()
        app.state.publisher = KafkaPublisher(
            settings, settings.publish_timeout_s, max_batch_bytes=settings.kafka_max_batch_bytes
        )
        await app.state.publisher.start()
        try:
            yield
        finally:
            await app.state.publisher.stop()

    app = create_service_app(
        settings,
        title="FinOps ingest",
        description="Validates agent events and publishes them to Kafka; nothing accepted is lost.",
        lifespan=with_shared_resources(lifespan, settings, verifier=verifier),
        readiness=lambda: {
            "kafka": app.state.publisher.check,
            "redis": lambda: redis_check(app.state.redis),
        },
    )
    app.state.settings = settings
    app.include_router(router)
    use_batch_limit(app, settings.max_batch_events)
    return app
