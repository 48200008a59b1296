"""Faust agents of the healer: decode, call the domain, emit. Nothing else.

Until the healer's own capability lands, the agent validates what it reads: an event that
does not decode is retried, then parked on the topic's dead-letter twin (at least once,
never silently dropped).
"""

from __future__ import annotations

import faust

from finops.common.consumer import faust_handle
from finops.common.events import ErrorEvent
from finops.common.topics import AGENT_ERROR


def register_agents(app: faust.App) -> None:
    source = app.topic(AGENT_ERROR.name, value_serializer="raw", partitions=AGENT_ERROR.partitions)

    async def handle(value: bytes) -> None:
        ErrorEvent.from_kafka(value)

    @app.agent(source, name="healer-agent_error")
    async def consume(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await faust_handle(app, event, handle, service="healer")
