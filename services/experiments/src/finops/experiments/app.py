"""Assembles the experiments: its Faust app and HTTP API in one process. No I/O at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from finops.common.datastores import postgres_pool
from finops.common.health import postgres_check
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.experiments.agents import register_agents
from finops.experiments.settings import ExperimentsSettings


def create_app(settings: ExperimentsSettings | None = None) -> FastAPI:
    settings = settings or ExperimentsSettings()
    faust_app = make_faust_app(settings, "finops-experiments")
    register_agents(faust_app)

    @asynccontextmanager
    async def database(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await postgres_pool(settings, max_size=5)
        try:
            yield
        finally:
            await app.state.db.close()

    return create_stream_service_app(
        settings,
        faust_app,
        title="FinOps experiments",
        resources=database,
        readiness=lambda app: {"postgres": lambda: postgres_check(app.state.db)},
        description="Automated cost A/B tests that stay valid under continuous monitoring.",
    )
