from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings


class HealerSettings(StreamSettings):
    service_name: str = "healer"
    port: int = DEFAULT_PORTS["healer"]
    #: How soon a label posted to another instance is learned here (seconds).
    label_refresh_interval_s: float = 5.0
