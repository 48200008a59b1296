"""Faust agents of the experiments: decode, call the domain, emit. Nothing else.

Until the experiments's own capability lands, the agent validates what it reads: an event that
does not decode is retried, then parked on the topic's dead-letter twin (at least once,
never silently dropped).
"""

from __future__ import annotations

import faust

from finops.common.consumer import faust_handle
from finops.common.events import LlmCallEvent
from finops.common.topics import AGENT_COST


def register_agents(app: faust.App) -> None:
    source = app.topic(AGENT_COST.name, value_serializer="raw", partitions=AGENT_COST.partitions)

    async def handle(value: bytes) -> None:
        LlmCallEvent.from_kafka(value)

    @app.agent(source, name="experiments-agent_cost")
    async def consume(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await faust_handle(app, event, handle, service="experiments")
