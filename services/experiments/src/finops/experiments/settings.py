from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings


class ExperimentsSettings(StreamSettings):
    service_name: str = "experiments"
    port: int = DEFAULT_PORTS["experiments"]
