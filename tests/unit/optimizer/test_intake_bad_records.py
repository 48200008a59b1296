"""The optimizer's intakes park a bad record on its topic's dead-letter topic and learn nothing
from it: an event of the other type than its topic carries (an ``agent.llm_call`` written to
``agent.error.v1``) and an experiment announcement that cannot be read (fakes for the consumer,
the producer and the checkpoint store)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY
from stream_fakes import BufferedConsumer, KeptProducer, NoStore
from support import llm_call

from finops.common.events import error_event
from finops.common.topics import AGENT_COST, AGENT_ERROR, EXPERIMENTS
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.adapters.task_type_forward import TaskTypeForwarder
from finops.optimizer.domain.engine import OptimizerEngine

CALL = json.dumps(llm_call(task_type="poison-t")).encode()
ERROR = json.dumps(
    error_event(
        {
            "agent_id": "bot",
            "task_type": "poison-t",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "error": {"status_code": 503, "message": "Service unavailable"},
        }
    )
).encode()


class ForwardingProducer(KeptProducer):
    """Keeps the dead letters (``sent``) and the records forwarded (``forwarded``), and
    acknowledges both at once."""

    def __init__(self) -> None:
        super().__init__()
        self.forwarded: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **options: Any) -> asyncio.Future[None]:
        self.forwarded.append((topic, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def stream_count(topic: str, outcome: str) -> float:
    labels = {"service": "optimizer", "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_stream_events_total", labels) or 0.0


async def one_worker_reads(topic: str, body: bytes) -> tuple[EventIntake, KeptProducer]:
    """The one-worker intake after reading one record ``body`` of ``topic``."""
    stop = asyncio.Event()
    producer = KeptProducer()
    intake = EventIntake(
        OptimizerEngine(),
        BufferedConsumer(topic, stop, polls=1, body=body),  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        NoStore(),  # type: ignore[arg-type]
        checkpoint_interval_s=3600,
        experiments_topic=EXPERIMENTS.name,
    )
    await intake.run(stop)
    return intake, producer


async def test_an_event_of_each_type_on_its_own_topic_is_applied():
    for topic, body in [(AGENT_COST.name, CALL), (AGENT_ERROR.name, ERROR)]:
        intake, producer = await one_worker_reads(topic, body)
        assert (intake.events, producer.sent) == (1, [])


def events_count(topic: str, outcome: str) -> float:
    labels = {"topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_optimizer_events_total", labels) or 0.0


@pytest.mark.parametrize(("topic", "body"), [(AGENT_COST.name, CALL), (AGENT_ERROR.name, ERROR)])
async def test_an_event_read_twice_is_applied_once_and_counted_a_duplicate(topic, body):
    # finops_optimizer_events_total said "applied" for each: 1,000 events sent again read as
    # 1,000 more applied while the summary counted them as duplicates
    applied, duplicate = events_count(topic, "applied"), events_count(topic, "duplicate")
    stop = asyncio.Event()
    intake = EventIntake(
        OptimizerEngine(),
        BufferedConsumer(topic, stop, polls=2, body=body),  # type: ignore[arg-type]
        KeptProducer(),  # type: ignore[arg-type]
        NoStore(),  # type: ignore[arg-type]
        checkpoint_interval_s=3600,
        experiments_topic=EXPERIMENTS.name,
    )
    await intake.run(stop)
    assert intake.engine.counted == 1
    assert events_count(topic, "applied") == applied + 1
    assert events_count(topic, "duplicate") == duplicate + 1


async def test_a_call_on_the_error_topic_is_parked_and_not_counted():
    parked = stream_count(AGENT_ERROR.name, "dead_lettered")
    processed = stream_count(AGENT_ERROR.name, "processed")
    intake, producer = await one_worker_reads(AGENT_ERROR.name, CALL)
    [(topic, value, headers)] = producer.sent
    assert (topic, value) == ("agent.error.v1.dlq", CALL)
    assert headers["x-service"] == b"optimizer"
    assert headers["x-error-type"] == b"WrongEventType"
    assert intake.events == 0 and intake.engine.analytics.events == 0
    assert stream_count(AGENT_ERROR.name, "dead_lettered") == parked + 1
    assert stream_count(AGENT_ERROR.name, "processed") == processed


async def test_an_error_on_the_cost_topic_is_parked_and_not_counted():
    intake, producer = await one_worker_reads(AGENT_COST.name, ERROR)
    assert [(t, v) for t, v, _ in producer.sent] == [("agent.cost.v1.dlq", ERROR)]
    assert intake.events == 0 and intake.engine.analytics.events == 0


async def forwarding_stage_reads(topic: str, body: bytes) -> ForwardingProducer:
    """What partitioned learning's forwarding stage sent after reading ``body`` of ``topic``."""
    stop = asyncio.Event()
    producer = ForwardingProducer()
    forwarder = TaskTypeForwarder(
        BufferedConsumer(topic, stop, polls=1, body=body),  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        learning_topic="finops.optimizer-events.v1",
        partitions=6,
        experiments_topic=EXPERIMENTS.name,
    )
    await forwarder.run(stop)
    return producer


async def test_the_forwarding_stage_forwards_a_call_on_the_cost_topic():
    producer = await forwarding_stage_reads(AGENT_COST.name, CALL)
    assert (producer.forwarded, producer.sent) == ([("finops.optimizer-events.v1", CALL)], [])


async def test_the_forwarding_stage_parks_a_call_on_the_error_topic():
    producer = await forwarding_stage_reads(AGENT_ERROR.name, CALL)
    assert [(t, v) for t, v, _ in producer.sent] == [("agent.error.v1.dlq", CALL)]
    assert producer.forwarded == []


@pytest.mark.parametrize("body", [b"garbage", b"[1, 2]"], ids=["not JSON", "not an object"])
async def test_an_unreadable_announcement_is_parked_not_processed(body: bytes):
    parked = stream_count(EXPERIMENTS.name, "dead_lettered")
    processed = stream_count(EXPERIMENTS.name, "processed")
    intake, producer = await one_worker_reads(EXPERIMENTS.name, body)
    [(topic, value, headers)] = producer.sent
    assert (topic, value) == ("finops.experiments.v1.dlq", body)
    assert (headers["x-service"], headers["x-origin-topic"]) == (
        b"optimizer",
        b"finops.experiments.v1",
    )
    assert intake.announcements_read == 1 and intake.engine.promoted == {}
    assert stream_count(EXPERIMENTS.name, "dead_lettered") == parked + 1
    assert stream_count(EXPERIMENTS.name, "processed") == processed


async def test_a_start_announcement_is_read_not_parked():
    body = json.dumps({"kind": "started", "experiment_id": "e1", "task_type": "t"}).encode()
    intake, producer = await one_worker_reads(EXPERIMENTS.name, body)
    assert (intake.announcements_read, producer.sent) == (1, [])
