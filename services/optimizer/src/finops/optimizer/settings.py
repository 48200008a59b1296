from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings


class OptimizerSettings(StreamSettings):
    service_name: str = "optimizer"
    port: int = DEFAULT_PORTS["optimizer"]
