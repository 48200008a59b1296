"""Faust agents of the healer: decode, call the domain, emit. Nothing else."""

from __future__ import annotations

import faust

from finops.common.metrics import STREAM_EVENTS
from finops.common.topics import AGENT_ERROR


def register_agents(app: faust.App) -> None:
    source = app.topic(AGENT_ERROR.name, value_serializer="raw", partitions=AGENT_ERROR.partitions)

    @app.agent(source, name="healer-agent_error")
    async def consume(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            STREAM_EVENTS.labels("healer", AGENT_ERROR.name, "seen").inc()
