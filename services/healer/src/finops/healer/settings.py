from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings


class HealerSettings(StreamSettings):
    service_name: str = "healer"
    port: int = DEFAULT_PORTS["healer"]
