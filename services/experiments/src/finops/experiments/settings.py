from __future__ import annotations

from pydantic import Field

from finops.common.settings import DEFAULT_PORTS, Port
from finops.common.stream_settings import StreamSettings
from finops.common.topics import AGENT_COST, AGENT_ERROR, EXPERIMENT_EVENTS, EXPERIMENTS


class ExperimentsSettings(StreamSettings):
    service_name: str = "experiments"
    port: Port = DEFAULT_PORTS["experiments"]
    faust_app_id: str = "finops-experiments"  # see StreamSettings
    # Not the Faust app's id (faust_app_id), which Faust uses as its own group: two
    # consumers with different subscriptions in one group rebalance each other forever.
    consumer_group: str = "finops-experiments-intake"
    # The owners of finops.experiment-events.v1's partitions: each instance analyses the
    # experiments of the partitions it owns (checkpoint rows "<checkpoint_name>:<partition>").
    analysis_group: str = "finops-experiments-analysis"
    checkpoint_name: str = "experiments"
    # How much is replayed after a crash, not whether the numbers are right (they always
    # are); a decision is checkpointed at once whatever this says.
    checkpoint_interval_s: float = Field(5.0, gt=0)
    # How soon the analysis follows an operator's start or stop and expires experiments.
    refresh_interval_s: float = Field(1.0, gt=0)
    # After PostgreSQL or the broker failed under the intake: how long new stages must run
    # before /readyz counts them up again and their failure restarts the pauses at 1 s.
    intake_healthy_after_s: float = Field(30.0, gt=0)
    # The registry's topics; a separate deployment (or a test) may point elsewhere.
    cost_topic: str = AGENT_COST.name
    error_topic: str = AGENT_ERROR.name
    experiments_topic: str = EXPERIMENTS.name
    events_topic: str = EXPERIMENT_EVENTS.name
