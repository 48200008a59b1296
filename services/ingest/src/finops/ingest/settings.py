from __future__ import annotations

from pydantic import Field

from finops.common.settings import DEFAULT_PORTS, CommonSettings, Port


class IngestSettings(CommonSettings):
    service_name: str = "ingest"
    port: Port = DEFAULT_PORTS["ingest"]
    #: largest request body accepted (bytes); larger ones get 413 payload_too_large
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    #: most events in one POST /api/events batch
    max_batch_events: int = Field(1000, ge=1)
    #: How far ahead of this server's clock an event time may be (agents' clock skew).
    max_event_clock_skew_s: float = Field(300.0, ge=0)
    #: How old an event may be: the optimizer keeps 60 daily windows, so older events could
    #: only reach its all-time totals.
    max_event_age_days: float = Field(60.0, gt=0)
    #: how long a batch may wait for the broker's acknowledgements before the request fails
    #: with 503 and a Retry-After
    publish_timeout_s: float = Field(5.0, gt=0)
    # One producer batch per partition per HTTP batch: aiokafka drains a partition's
    # batches one at a time, so small batches would serialise a request's round trips.
    kafka_max_batch_bytes: int = Field(512 * 1024, gt=0)
