"""Assembles the healer: its Faust app and HTTP API in one process. No I/O at import."""

from __future__ import annotations

from fastapi import FastAPI

from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.healer.agents import register_agents
from finops.healer.settings import HealerSettings


def create_app(settings: HealerSettings | None = None) -> FastAPI:
    settings = settings or HealerSettings()
    faust_app = make_faust_app(settings, "finops-healer")
    register_agents(faust_app)
    return create_stream_service_app(
        settings,
        faust_app,
        title="FinOps healer",
        description="Error patterns, remedies and fleet-wide circuit breakers.",
    )
