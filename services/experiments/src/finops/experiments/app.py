"""Assembles the experiments: definitions (PostgreSQL), HTTP API and Faust app in one process.
No I/O at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.datastores import postgres_pool, redis_client
from finops.common.health import postgres_check, redis_check
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.agents import register_agents
from finops.experiments.api.routes import install_experiment_errors, router
from finops.experiments.settings import ExperimentsSettings


def create_app(settings: ExperimentsSettings | None = None) -> FastAPI:
    settings = settings or ExperimentsSettings()
    faust_app = make_faust_app(settings, "finops-experiments")
    register_agents(faust_app)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await postgres_pool(settings, max_size=5)
        app.state.redis = redis_client(settings)
        verifier = getattr(app.state, "verifier", None) or TokenVerifier(settings, app.state.redis)
        install_verifier(app, verifier)
        app.state.experiments = ExperimentRepository(app.state.db)
        try:
            yield
        finally:
            await verifier.aclose()
            await app.state.redis.aclose()
            await app.state.db.close()

    app = create_stream_service_app(
        settings,
        faust_app,
        title="FinOps experiments",
        resources=resources,
        readiness=lambda app: {
            "postgres": lambda: postgres_check(app.state.db),
            "redis": lambda: redis_check(app.state.redis),
        },
        description="Automated cost A/B tests that stay valid under continuous monitoring.",
    )
    install_experiment_errors(app)
    app.include_router(router)
    return app
