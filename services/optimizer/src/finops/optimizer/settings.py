from __future__ import annotations

from pydantic import Field

from finops.common.settings import DEFAULT_PORTS, CommonSettings, Port
from finops.common.topics import (
    AGENT_COST,
    AGENT_ERROR,
    ALERTS,
    CIRCUITS,
    EXPERIMENTS,
    OPTIMIZER_EVENTS,
    OPTIMIZER_SHARDS,
)


class OptimizerSettings(CommonSettings):
    service_name: str = "optimizer"
    port: Port = DEFAULT_PORTS["optimizer"]
    # one worker only (FINOPS_PARTITIONED_LEARNING=false; partitioned workers use
    # `FINOPS_FORWARD_GROUP` and `FINOPS_OWNER_GROUP`): the intake's group. Changing it loses
    # nothing: the intake resumes from the offsets stored with its checkpoint. (It was kept
    # apart from "finops-optimizer", the group of the Faust app the optimizer ran until it had
    # no job for one.)
    consumer_group: str = "finops-optimizer-intake"
    checkpoint_name: str = "optimizer"
    # one worker only (partitioned workers checkpoint each changed partition every
    # `FINOPS_CHECKPOINT_INTERVAL_S`): a checkpoint after this many events, or that interval.
    # How much is replayed after a crash, not whether the numbers are right (they always
    # are): a checkpoint costs tens of milliseconds of loop time, so not too often.
    checkpoint_every_events: int = Field(100_000, ge=1)
    checkpoint_interval_s: float = Field(30.0, gt=0)
    #: overall quality to keep relative to the best single model (None: per-task objectives)
    fleet_quality_target: float | None = Field(None, gt=0, le=1)
    policy_seed: int = 0
    # The registry's topics; a separate deployment (or a test) may point elsewhere.
    cost_topic: str = AGENT_COST.name
    error_topic: str = AGENT_ERROR.name
    alerts_topic: str = ALERTS.name
    #: decisions of the experiments service; their winners are adopted per task type
    experiments_topic: str = EXPERIMENTS.name
    #: the healer's circuit breakers: arms whose breaker is open are not recommended
    circuits_topic: str = CIRCUITS.name
    #: share of requests that may go to an arm whose breaker is half-open (probes)
    breaker_probe_rate: float = Field(0.05, ge=0, le=1)

    # ---- partitioned learning (many workers; docs/optimizer.md "Scaling out") -------------
    #: learn in partitions by task type, each worker owning some; False: this one worker
    #: learns everything (the default, and the local stack's)
    partitioned_learning: bool = False
    learning_topic: str = OPTIMIZER_EVENTS.name
    #: the partitions of the learning and shards topics, which map task types to partitions:
    #: a worker refuses to start when either topic has another count
    learning_partitions: int = Field(OPTIMIZER_EVENTS.partitions, ge=1)
    shards_topic: str = OPTIMIZER_SHARDS.name
    forward_group: str = "finops-optimizer-forward"
    owner_group: str = "finops-optimizer-owners"
    #: how often an owner publishes a changed partition's state (the view's staleness)
    snapshot_interval_s: float = Field(1.0, gt=0)
