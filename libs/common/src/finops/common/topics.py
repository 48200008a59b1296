"""The topic registry: every Kafka topic of the platform, declared once.

Services, the local stack and the operator tools all read this list; nobody spells a topic
name anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic with the settings it is created with."""

    name: str
    partitions: int
    key: str
    description: str
    retention_ms: int | None = 7 * DAY_MS
    cleanup_policy: str = "delete"
    consumed: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def config(self) -> dict[str, str]:
        conf = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.retention_ms is not None and self.cleanup_policy == "delete":
            conf["retention.ms"] = str(self.retention_ms)
        return conf


AGENT_COST = TopicSpec(
    "agent.cost.v1", 3, "agent_id", "one event per LLM call (agent.llm_call)", consumed=True
)
AGENT_ERROR = TopicSpec(
    "agent.error.v1", 3, "agent_id", "one event per failed LLM call (agent.error)", consumed=True
)
RECOMMENDATIONS = TopicSpec(
    "finops.recommendations.v1",
    3,
    "task_type",
    "every recommendation with its propensity (off-policy log)",
    retention_ms=30 * DAY_MS,
    consumed=True,
)
HEALING = TopicSpec(
    "finops.healing.v1", 3, "agent_id", "every remedy advice the healer gave", consumed=True
)
CIRCUITS = TopicSpec(
    "finops.circuits.v1",
    3,
    "provider/model",
    "latest circuit-breaker state per provider/model",
    retention_ms=None,
    cleanup_policy="compact",
    consumed=True,
)
PROVIDER_OUTCOMES = TopicSpec(
    "finops.provider-outcomes.v1",
    3,
    "provider/model",
    "each call's verdict on its provider/model (success or provider fault), for the breakers",
    retention_ms=1 * DAY_MS,
    consumed=True,
)
EXPERIMENTS = TopicSpec(
    "finops.experiments.v1",
    3,
    "experiment_id",
    "experiment starts, stops and decisions",
    retention_ms=90 * DAY_MS,
    consumed=True,
)
EXPERIMENT_EVENTS = TopicSpec(
    "finops.experiment-events.v1",
    3,
    "experiment_id",
    "tagged cost events re-keyed by experiment id, for the experiment's analysing instance",
    retention_ms=1 * DAY_MS,
    consumed=True,
)
OPTIMIZER_EVENTS = TopicSpec(
    "finops.optimizer-events.v1",
    6,
    "task_type",
    "cost, error and experiment-decision events and operator changes re-keyed by task type, "
    "for the optimizer worker that owns the task type's partition (partitioned learning)",
    consumed=True,
)
OPTIMIZER_SHARDS = TopicSpec(
    "finops.optimizer-shards.v1",
    6,
    "partition",
    "the latest learned state of each optimizer partition, which every replica answers from",
    retention_ms=None,
    cleanup_policy="compact",
)
ALERTS = TopicSpec("finops.alerts.v1", 1, "subject", "budget, anomaly, drift and breaker alerts")

PRIMARY_TOPICS: tuple[TopicSpec, ...] = (
    AGENT_COST,
    AGENT_ERROR,
    RECOMMENDATIONS,
    HEALING,
    PROVIDER_OUTCOMES,
    CIRCUITS,
    EXPERIMENTS,
    EXPERIMENT_EVENTS,
    OPTIMIZER_EVENTS,
    OPTIMIZER_SHARDS,
    ALERTS,
)


def dlq_spec(spec: TopicSpec) -> TopicSpec:
    return TopicSpec(
        spec.dlq,
        1,
        spec.key,
        f"poison messages from {spec.name} (headers: origin topic/partition/offset, error)",
        retention_ms=30 * DAY_MS,
    )


ALL_TOPICS: tuple[TopicSpec, ...] = PRIMARY_TOPICS + tuple(
    dlq_spec(t) for t in PRIMARY_TOPICS if t.consumed
)
TOPICS_BY_NAME = {t.name: t for t in ALL_TOPICS}

#: Where ingest publishes each event type.
TOPIC_FOR_EVENT_TYPE = {"agent.llm_call": AGENT_COST.name, "agent.error": AGENT_ERROR.name}
