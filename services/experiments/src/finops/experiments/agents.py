"""Faust agents of the experiments: decode, count, nothing else.

The cost-event intake is checkpointed with its offsets (see ``adapters/stream.py``); the Faust
app reads ``finops.experiments.v1`` back, so operators see every announcement on /metrics.
"""

from __future__ import annotations

import json

import faust

from finops.common.metrics import counter_by
from finops.common.topics import EXPERIMENTS
from finops.experiments.adapters.repository import ANNOUNCEMENT_KINDS

READ_BACK = counter_by(
    "finops_experiments_announcements_read_total",
    "Experiment announcements read back from finops.experiments.v1, by kind",
    "kind",
    (*ANNOUNCEMENT_KINDS, "unreadable"),
)


def register_agents(app: faust.App, topic: str = EXPERIMENTS.name) -> None:
    source = app.topic(topic, value_serializer="raw", partitions=EXPERIMENTS.partitions)

    @app.agent(source, name="experiments-announcements")
    async def read_back(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                kind = str(json.loads(value).get("kind", "?"))[:32]
            except (ValueError, AttributeError):
                kind = "unreadable"
            READ_BACK.labels(kind).inc()
