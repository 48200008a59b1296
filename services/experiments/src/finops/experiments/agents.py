"""Faust agents of the experiments: decode, call the domain, emit. Nothing else."""

from __future__ import annotations

import faust

from finops.common.metrics import STREAM_EVENTS
from finops.common.topics import AGENT_COST


def register_agents(app: faust.App) -> None:
    source = app.topic(AGENT_COST.name, value_serializer="raw", partitions=AGENT_COST.partitions)

    @app.agent(source, name="experiments-agent_cost")
    async def consume(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            STREAM_EVENTS.labels("experiments", AGENT_COST.name, "seen").inc()
