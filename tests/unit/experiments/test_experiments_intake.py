"""The experiments intake learns every task type it sees, tagged or not."""

from __future__ import annotations

import asyncio
import json

from stream_fakes import BufferedConsumer, NoExperiments, NoStore
from support import llm_call

from finops.experiments.adapters.stream import AnalysisIntake


async def _task_types_recorded(body: bytes) -> set[str]:
    stop = asyncio.Event()
    repo = NoExperiments()
    intake = AnalysisIntake(
        BufferedConsumer("agent.cost.v1", stop, polls=1, body=body),  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        store=NoStore(),  # type: ignore[arg-type]
        repo=repo,  # type: ignore[arg-type]
        name="t",
        cost_topic="agent.cost.v1",
        experiments_topic="finops.experiments.v1",
        checkpoint_interval_s=3600,
        refresh_interval_s=3600,
    )
    await intake.run(stop)
    return repo.task_types


async def test_an_untagged_call_as_ingest_writes_it_makes_its_task_type_known():
    # ingest writes every optional field, so an untagged call carries "experiment": null
    event = llm_call(task_type="triage", experiment=None)
    assert await _task_types_recorded(json.dumps(event).encode()) == {"triage"}


async def test_a_call_without_the_experiment_field_makes_its_task_type_known():
    event = llm_call(task_type="extract")
    assert await _task_types_recorded(json.dumps(event).encode()) == {"extract"}
