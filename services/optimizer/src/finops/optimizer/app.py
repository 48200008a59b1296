"""Assembles the optimizer: its Faust app and HTTP API in one process. No I/O at import."""

from __future__ import annotations

from fastapi import FastAPI

from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.optimizer.agents import register_agents
from finops.optimizer.settings import OptimizerSettings


def create_app(settings: OptimizerSettings | None = None) -> FastAPI:
    settings = settings or OptimizerSettings()
    faust_app = make_faust_app(settings, "finops-optimizer")
    register_agents(faust_app)
    return create_stream_service_app(
        settings,
        faust_app,
        title="FinOps optimizer",
        description="Spend analytics and online model recommendations.",
    )
