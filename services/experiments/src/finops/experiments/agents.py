"""Faust agents of the experiments: decode, count, park what does not decode.

The cost-event intake is checkpointed with its offsets (see ``adapters/analysis_intake.py``);
the Faust app reads ``finops.experiments.v1`` back, so operators see every announcement on
/metrics.
An announcement that is not a JSON object is parked on ``finops.experiments.v1.dlq`` (the
service's one reader of the topic in a consumer group, so once per service).
"""

from __future__ import annotations

import json

import faust

from finops.common.dead_letters import faust_handle
from finops.common.metrics import counter_by, export_stream_counts
from finops.common.topics import EXPERIMENTS
from finops.experiments.adapters.repository import ANNOUNCEMENT_KINDS

READ_BACK = counter_by(
    "finops_experiments_announcements_read_total",
    "Experiment announcements read back from finops.experiments.v1, by kind",
    "kind",
    (*ANNOUNCEMENT_KINDS, "other", "unreadable"),
)


def announcement_kind(value: bytes) -> str:
    """The ``kind`` of an announcement, counted on /metrics (ValueError: not one).

    >>> announcement_kind(b'{"kind": "decided"}'), announcement_kind(b'{}')
    ('decided', '?')
    >>> announcement_kind(b"[1]")
    Traceback (most recent call last):
    ValueError: an announcement is a JSON object, not list
    """
    announcement = json.loads(value)
    if not isinstance(announcement, dict):
        raise ValueError(f"an announcement is a JSON object, not {type(announcement).__name__}")
    return str(announcement.get("kind", "?"))[:32]


async def read_announcement(value: bytes) -> None:
    """Count one announcement by kind (``other`` for a kind this version does not write: the
    label takes no value a record brings); one that does not decode is counted
    ``unreadable`` and raises (the caller parks it)."""
    try:
        kind = announcement_kind(value)
    except ValueError:
        READ_BACK.labels("unreadable").inc()
        raise
    READ_BACK.labels(kind if kind in ANNOUNCEMENT_KINDS else "other").inc()


def register_agents(app: faust.App, topic: str = EXPERIMENTS.name) -> None:
    source = app.topic(topic, value_serializer="raw", partitions=EXPERIMENTS.partitions)
    export_stream_counts("experiments", [topic])

    # one actor, one event at a time: faust_handle's uncommitted record needs it
    @app.agent(source, name="experiments-announcements", concurrency=1)
    async def read_back(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await faust_handle(app, event, read_announcement, service="experiments", max_attempts=1)
