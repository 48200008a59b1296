from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS, CommonSettings


class IngestSettings(CommonSettings):
    service_name: str = "ingest"
    port: int = DEFAULT_PORTS["ingest"]
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 1000
    publish_timeout_s: float = 5.0
