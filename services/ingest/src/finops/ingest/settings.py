from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS, CommonSettings


class IngestSettings(CommonSettings):
    service_name: str = "ingest"
    port: int = DEFAULT_PORTS["ingest"]
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 1000
    publish_timeout_s: float = 5.0
    # One producer batch per partition per HTTP batch: aiokafka drains a partition's
    # batches one at a time, so small batches would serialise a request's round trips.
    kafka_max_batch_bytes: int = 512 * 1024
