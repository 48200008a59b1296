"""The experiments intake (its forwarding stage) learns every task type it sees, tagged or not."""

from __future__ import annotations

import asyncio
import json

from stream_fakes import BufferedConsumer, NoExperiments
from support import llm_call

from finops.experiments.adapters.forward import TaggedForwarder


async def _task_types_recorded(body: bytes) -> set[str]:
    stop = asyncio.Event()
    repo = NoExperiments()
    forwarder = TaggedForwarder(
        BufferedConsumer("agent.cost.v1", stop, polls=1, body=body),  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        repo=repo,  # type: ignore[arg-type]
        events_topic="finops.experiment-events.v1",
        partitions=3,
    )
    await forwarder.run(stop)
    return repo.task_types


async def test_an_untagged_call_as_ingest_writes_it_makes_its_task_type_known():
    # ingest writes every optional field, so an untagged call carries "experiment": null
    event = llm_call(task_type="triage", experiment=None)
    assert await _task_types_recorded(json.dumps(event).encode()) == {"triage"}


async def test_a_call_without_the_experiment_field_makes_its_task_type_known():
    event = llm_call(task_type="extract")
    assert await _task_types_recorded(json.dumps(event).encode()) == {"extract"}
