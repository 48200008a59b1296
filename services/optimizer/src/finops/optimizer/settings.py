from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings
from finops.common.topics import AGENT_COST, AGENT_ERROR, ALERTS


class OptimizerSettings(StreamSettings):
    service_name: str = "optimizer"
    port: int = DEFAULT_PORTS["optimizer"]
    consumer_group: str = "finops-optimizer"
    checkpoint_name: str = "optimizer"
    checkpoint_every_events: int = 20_000
    checkpoint_interval_s: float = 5.0
    #: overall quality to keep relative to the best single model (None: per-task objectives)
    fleet_quality_target: float | None = None
    policy_seed: int = 0
    # The registry's topics; a separate deployment (or a test) may point elsewhere.
    cost_topic: str = AGENT_COST.name
    error_topic: str = AGENT_ERROR.name
    alerts_topic: str = ALERTS.name
