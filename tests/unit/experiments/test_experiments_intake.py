"""The experiments intake (its forwarding stage) learns every task type it sees, tagged or not,
and parks a record that is not a call event on the dead-letter topic without learning from
it."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY
from stream_fakes import BufferedConsumer, KeptProducer, NoExperiments
from support import llm_call

from finops.common.events import error_event
from finops.experiments.adapters.forward import TaggedForwarder


async def _task_types_recorded(body: bytes, producer: KeptProducer | None = None) -> set[str]:
    stop = asyncio.Event()
    repo = NoExperiments()
    forwarder = TaggedForwarder(
        BufferedConsumer("agent.cost.v1", stop, polls=1, body=body),  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
        repo=repo,  # type: ignore[arg-type]
        events_topic="finops.experiment-events.v1",
        partitions=3,
    )
    await forwarder.run(stop)
    return repo.task_types


def _invalid() -> float:
    value = REGISTRY.get_sample_value("finops_experiments_events_total", {"outcome": "invalid"})
    return value or 0.0


async def test_an_untagged_call_as_ingest_writes_it_makes_its_task_type_known():
    # ingest writes every optional field, so an untagged call carries "experiment": null
    event = llm_call(task_type="triage", experiment=None)
    assert await _task_types_recorded(json.dumps(event).encode()) == {"triage"}


async def test_a_call_without_the_experiment_field_makes_its_task_type_known():
    event = llm_call(task_type="extract")
    assert await _task_types_recorded(json.dumps(event).encode()) == {"extract"}


ERROR_ON_THE_COST_TOPIC = json.dumps(
    error_event(
        {
            "agent_id": "bot",
            "task_type": "poisoned-task",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "error": {"status_code": 503, "message": "Service unavailable"},
        }
    )
).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json {",
        b'{"data": {"task_type": "poisoned-task"}}',
        ERROR_ON_THE_COST_TOPIC,  # agent.cost.v1 carries agent.llm_call events only
    ],
    ids=["not JSON", "not an event", "an error event"],
)
async def test_a_record_that_is_not_a_call_event_is_dead_lettered_and_teaches_nothing(body):
    producer = KeptProducer()
    invalid = _invalid()
    assert await _task_types_recorded(body, producer) == set()
    [(topic, value, headers)] = producer.sent
    assert (topic, value, headers["x-attempts"]) == ("agent.cost.v1.dlq", body, b"1")
    assert _invalid() == invalid + 1
