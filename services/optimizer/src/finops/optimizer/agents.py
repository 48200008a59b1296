"""Faust agents of the optimizer: decode, call the domain, emit. Nothing else.

The cost/error intake is checkpointed with its offsets (see ``adapters/stream.py``); the Faust
app reads the recommendation log back, so operators can see that every decision was logged.
"""

from __future__ import annotations

import json

import faust
from prometheus_client import Counter

from finops.common.topics import RECOMMENDATIONS

LOGGED_BACK = Counter(
    "finops_optimizer_recommendation_log_read_total",
    "Recommendations read back from the log, by task family and whether they explored",
    ["family", "explored"],
)


def register_agents(app: faust.App) -> None:
    source = app.topic(
        RECOMMENDATIONS.name, value_serializer="raw", partitions=RECOMMENDATIONS.partitions
    )

    @app.agent(source, name="optimizer-recommendation-log")
    async def read_back(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                rec = json.loads(value)
            except ValueError:
                continue
            family = str(rec.get("task_type", "")).split("/", 1)[0][:64]
            LOGGED_BACK.labels(family, str(bool(rec.get("explored"))).lower()).inc()
