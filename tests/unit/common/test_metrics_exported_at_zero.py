"""The counters the alert rules read with ``increase()`` are exported at 0 before their first
count: a series that appears with its first count holds 1 from its first sample, so
``increase()`` over any window sees no increase and the alert (FinopsDeadLetters,
FinopsBreakerOpened, FinopsBudgetBurn, FinopsSpendAnomaly) misses the first dead letter,
breaker opening or budget alert after each start of a service
(``deploy/prometheus/alerts_test.yaml`` shows the rules firing on series that start at 0).

The registry is the process's; each reader here gets a service or topic name of its own, so
what another test counted cannot stand in for the export checked. The module-level counters
are read in a fresh interpreter, as a service's process starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from finops.common.consumer import AtLeastOnceConsumer
from finops.common.dead_letters import register_validating_agent
from finops.common.log_position import ResumePlan
from finops.common.topics import AGENT_ERROR


def stream_count(service: str, topic: str, outcome: str) -> float | None:
    labels = {"service": service, "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_stream_events_total", labels)


class IdleConsumer:
    """Starts, subscribes and is assigned without a broker."""

    async def start(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.topics = topics

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}


class NoCheckpoint:
    async def seek(self, consumer: Any, partitions: Any) -> None:
        pass


async def handle(record: Any) -> None:
    pass


async def test_a_consumer_exports_its_topics_counts_at_zero_when_it_subscribes():
    reader = AtLeastOnceConsumer(
        IdleConsumer(),  # type: ignore[arg-type]
        # a producer: it parks what it gives up on
        object(),  # type: ignore[arg-type]
        handle,
        service="zero-subscribed",
    )
    await reader.start_subscribed(["zero.a.v1", "zero.b.v1"])
    for topic in ("zero.a.v1", "zero.b.v1"):
        assert stream_count("zero-subscribed", topic, "processed") == 0.0
        assert stream_count("zero-subscribed", topic, "dead_lettered") == 0.0


async def test_a_consumer_without_a_producer_exports_no_dead_letters_it_cannot_write():
    reader = AtLeastOnceConsumer(
        IdleConsumer(),  # type: ignore[arg-type]
        None,
        handle,
        service="zero-counting",
    )
    await reader.start_subscribed(["zero.c.v1"])
    assert stream_count("zero-counting", "zero.c.v1", "processed") == 0.0
    assert stream_count("zero-counting", "zero.c.v1", "dead_lettered") is None


async def test_a_consumer_assigned_without_a_group_exports_its_topics_counts_at_zero():
    reader = AtLeastOnceConsumer(
        IdleConsumer(),  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]
        handle,
        service="zero-assigned",
        checkpointed=NoCheckpoint(),  # type: ignore[arg-type]
    )
    await reader.start_assigned_topics(["zero.d.v1"])
    assert stream_count("zero-assigned", "zero.d.v1", "dead_lettered") == 0.0


class AgentApp:
    """What :func:`register_validating_agent` asks of a Faust app."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}

    def topic(self, name: str, **options: Any) -> str:
        return name

    def agent(self, source: str, name: str, **options: Any) -> Any:
        self.agents[name] = options
        return lambda consume: consume


def test_a_validating_faust_agent_exports_its_topics_counts_at_zero():
    register_validating_agent(AgentApp(), AGENT_ERROR, service="zero-agent")
    assert stream_count("zero-agent", AGENT_ERROR.name, "processed") == 0.0
    assert stream_count("zero-agent", AGENT_ERROR.name, "dead_lettered") == 0.0


def test_a_validating_faust_agent_runs_one_actor():
    # faust_handle leaves a record refused for good uncommitted only when no later record of
    # its partition is acked meanwhile: with two actors Faust committed past it
    app = AgentApp()
    register_validating_agent(app, AGENT_ERROR, service="one-actor")
    assert app.agents == {f"one-actor-{AGENT_ERROR.name}": {"concurrency": 1}}


async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
    return ResumePlan("cluster", {})


def test_each_partitioned_intake_exports_its_dead_letters_at_zero():
    from finops.experiments.adapters.analysis_intake import AnalysisIntake
    from finops.healer.adapters.breaker_shards import BreakerShards
    from finops.healer.domain.breakers import BreakerConfig
    from finops.optimizer.adapters.engine_shards import EngineShards
    from finops.optimizer.domain.engine import OptimizerEngine

    BreakerShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        config=BreakerConfig(),
        topic="zero.outcomes.v1",
        resume=resume,
        name="breakers",
        circuits_topic="finops.circuits.v1",
        alerts_topic="finops.alerts.v1",
        published=None,  # type: ignore[arg-type]
    )
    AnalysisIntake(
        None,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        repo=None,  # type: ignore[arg-type]
        name="experiments",
        events_topic="zero.experiment-events.v1",
        experiments_topic="finops.experiments.v1",
        partitions=6,
        resume=resume,
    )
    EngineShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        topic="zero.optimizer-events.v1",
        resume=resume,
        name="optimizer",
        new_engine=OptimizerEngine,
        shards_topic="shards",
        alerts_topic="alerts",
    )
    assert stream_count("healer", "zero.outcomes.v1", "dead_lettered") == 0.0
    assert stream_count("experiments", "zero.experiment-events.v1", "dead_lettered") == 0.0
    assert stream_count("optimizer", "zero.optimizer-events.v1", "dead_lettered") == 0.0
    # they count no processed records: no series that never moves
    assert stream_count("healer", "zero.outcomes.v1", "processed") is None


#: the series the alert rules read with increase(), and the other counters of one label with
#: a fixed set of values (docs/metrics.md), each with its labels
ALERTED = [
    ("finops_healer_breaker_transitions_total", {"state": "open"}),
    ("finops_healer_breaker_transitions_total", {"state": "closed"}),
    ("finops_healer_breaker_transitions_total", {"state": "half_open"}),
    ("finops_optimizer_alerts_total", {"kind": "budget"}),
    ("finops_optimizer_alerts_total", {"kind": "anomaly"}),
    ("finops_optimizer_alerts_total", {"kind": "drift"}),
    *(
        ("finops_ingest_batches_rejected_total", {"code": code})
        for code in (
            "invalid_json",
            "invalid_events",
            "batch_too_large",
            "agent_mismatch",
            "team_mismatch",
            "source_mismatch",
            "error",
        )
    ),
    *(
        ("finops_optimizer_recommendations_logged_total", {"outcome": outcome})
        for outcome in ("sent", "failed", "dropped")
    ),
    *(
        ("finops_optimizer_recommendations_total", {"made_by": made_by})
        for made_by in (
            "greedy",
            "thompson",
            "identification",
            "reference_audit",
            "threshold_test",
            "fair_trial",
            "floor",
        )
    ),
    *(
        ("finops_healer_breaker_outcomes_total", {"outcome": outcome})
        for outcome in (
            "success",
            "fault",
            "not_a_provider_fault",
            "unsuccessful_call",
            "undecodable",
            "repeated",
        )
    ),
    *(
        ("finops_healer_breaker_trips_held_back_total", {"rule": rule})
        for rule in ("failure_rate", "detector", "probe")
    ),
]

READ_AT_START = """
import json, sys
import finops.healer.app, finops.ingest.app, finops.optimizer.app
from prometheus_client import REGISTRY
wanted = json.loads(sys.argv[1])
print(json.dumps([REGISTRY.get_sample_value(name, labels) for name, labels in wanted]))
"""


def test_the_alerted_and_fixed_label_counters_are_at_zero_from_the_start():
    answer = subprocess.run(
        [sys.executable, "-c", READ_AT_START, json.dumps(ALERTED)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(answer.stdout) == [0.0] * len(ALERTED)
