"""A conclusion is announced and recorded before any checkpoint that holds it is saved.

:class:`~finops.common.owned_partitions.OwnedPartitions` applies a poll a turn at a time and
releases its lock between two turns, so a rebalance may checkpoint a partition (and forget it)
before :meth:`AnalysisIntake.after_batch`. Saved unannounced, a conclusion would be lost in a
crash before the announcement: the next owner loads the concluded experiment, drops its later
events as ``experiment_concluded``, and the experiment stays running in PostgreSQL for good.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from stream_fakes import OtherTask, Poll, ScriptedConsumer, crash_after_first

from finops.common.checkpoints import Checkpoint
from finops.common.log_position import ResumePlan
from finops.common.partitions import partition_for
from finops.experiments.adapters.repository import Experiment
from finops.experiments.adapters.stream import AnalysisIntake
from finops.experiments.domain.analysis import ExperimentAnalysis, Tagged, encode_tagged
from finops.experiments.domain.definition import build_definition

TOPIC = "finops.experiment-events.v1"
EXPERIMENTS_TOPIC = "finops.experiments.v1"
PARTITIONS = 3
EXPERIMENT = "x"
PARTITION = partition_for(EXPERIMENT, PARTITIONS)
DEFINITION = build_definition(
    name="e",
    task_type="t",
    variants=[
        {"name": "A", "model": "big", "provider": "p"},
        {"name": "B", "model": "small", "provider": "p"},
    ],
    known_task_types={"t"},
    min_samples=50,
    max_duration_s=3600,
)


def _events() -> tuple[list[Tagged], int]:
    """Calls of the experiment, B cheaper, and how many conclude it (a look after each)."""
    rng = random.Random(0)
    events = [
        Tagged(
            f"id-{i}",
            EXPERIMENT,
            "AB"[i % 2],
            (0.01 if i % 2 == 0 else 0.007) * rng.lognormvariate(0, 0.3),
            True,
            500.0,
            0.9,
        )
        for i in range(4000)
    ]
    scratch = ExperimentAnalysis()
    scratch.track(EXPERIMENT, DEFINITION, started_at=0.0)
    for concluding, event in enumerate(events, 1):
        if scratch.observe(event, 1.0) is not None:
            return events, concluding
    raise AssertionError("the scripted calls conclude nothing")


EVENTS, CONCLUDING = _events()
#: the first turn of the poll concludes the experiment; the second has the calls after it
PER_TURN = CONCLUDING + 10


def value(partition: int, offset: int) -> bytes:
    return encode_tagged([EVENTS[offset]])


class World:
    """The broker's experiments topic, PostgreSQL's experiments and checkpoint rows, and what
    reached them, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.broker_down = False
        self.checkpoints: dict[str, Checkpoint] = {}
        started = datetime.now(UTC)
        self.experiment = Experiment(
            EXPERIMENT, DEFINITION, "running", "salt", "op", started, started, None, None
        )

    # the producer
    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        if self.broker_down:
            raise KafkaConnectionError("the broker is down")
        body = json.loads(value)
        self.log.append(("announced", f"{body['kind']} {body['experiment_id']}"))

    # the checkpoint store
    async def load(self, name: str) -> Checkpoint | None:
        return self.checkpoints.get(name)

    async def save(
        self, name: str, checkpoint: Checkpoint, snapshots: Any, *, position: int | None
    ) -> bool:
        self.log.append(("saved", name))
        self.checkpoints[name] = checkpoint
        return True

    # the experiments' repository
    async def get(self, experiment_id: str) -> Experiment:
        return self.experiment

    async def all(self) -> list[Experiment]:
        return [self.experiment]

    @asynccontextmanager
    async def unannounced(self) -> AsyncIterator[list[Any]]:
        yield []

    async def conclude(
        self, experiment_id: str, status: str, decision: dict[str, Any], actor: str
    ) -> bool:
        self.log.append(("recorded", f"{status} {experiment_id}"))
        if self.experiment.status != "running":
            return False
        self.experiment = replace(self.experiment, status=status, decision=decision)
        return True

    def saved_conclusion(self) -> dict[str, Any] | None:
        checkpoint = self.checkpoints[f"experiments:{PARTITION}"]
        state = ExperimentAnalysis.from_state(checkpoint.state_dict())
        return state.experiments[EXPERIMENT].conclusion


async def owner(world: World) -> tuple[AnalysisIntake, ScriptedConsumer]:
    """An instance that owns the experiment's partition; its consumer reads the poll of the
    experiment's calls (from the partition's checkpoint, none here)."""

    async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
        return ResumePlan("cluster", dict(saved))

    consumer = ScriptedConsumer(asyncio.Event(), TOPIC, value)
    intake = AnalysisIntake(
        consumer,  # type: ignore[arg-type]
        producer=world,  # type: ignore[arg-type]
        store=world,  # type: ignore[arg-type]
        repo=world,  # type: ignore[arg-type]
        name="experiments",
        events_topic=TOPIC,
        experiments_topic=EXPERIMENTS_TOPIC,
        partitions=PARTITIONS,
        resume=resume,
    )
    intake.records_per_turn = PER_TURN
    await intake.adopt({PARTITION})
    assert consumer.from_beginning == [TopicPartition(TOPIC, PARTITION)]
    consumer.polls = [Poll({PARTITION: list(range(2 * PER_TURN))})]
    return intake, consumer


async def test_a_conclusion_checkpointed_by_a_release_between_two_turns_was_announced_first():
    world = World()
    intake, consumer = await owner(world)
    other = OtherTask()
    other.first = lambda: intake.release({PARTITION})  # a rebalance after the first turn
    # the process dies after the rebalance: no after_batch
    assert await crash_after_first(intake, consumer, other) is None
    assert world.saved_conclusion() is not None  # the next owner drops every later call...
    # ...so the decision went out and was written before that checkpoint was saved
    assert world.log == [
        ("announced", f"decision {EXPERIMENT}"),
        ("recorded", f"decided {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    assert world.experiment.status == "decided"
    assert intake.shards == {} and intake.unannounced == {}


async def test_a_conclusion_the_broker_does_not_take_is_not_saved_and_its_next_owner_announces_it():
    world = World()
    world.broker_down = True
    intake, consumer = await owner(world)
    other = OtherTask()
    other.first = lambda: intake.release({PARTITION})
    failed = await crash_after_first(intake, consumer, other)
    # the release's checkpoint failed before saving anything; the partition is forgotten
    assert isinstance(failed, KafkaConnectionError)
    assert world.log == [] and world.checkpoints == {}
    assert intake.shards == {} and intake.unannounced == {}
    assert world.experiment.status == "running"
    # the next owner reads the partition from the last checkpoint (none: its beginning),
    # reaches the conclusion again and announces it, then checkpoints
    world.broker_down = False
    successor, successor_consumer = await owner(world)
    await successor.run(successor_consumer.stop)
    assert world.log == [
        ("announced", f"decision {EXPERIMENT}"),
        ("recorded", f"decided {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    assert world.saved_conclusion() is not None
    assert world.experiment.status == "decided"


async def test_a_conclusion_the_broker_does_not_take_after_a_batch_stops_the_intake_unsaved():
    world = World()
    world.broker_down = True
    intake, consumer = await owner(world)
    # the intake's supervisor starts a new intake from the checkpoints on this failure
    try:
        await intake.run(consumer.stop)
    except KafkaConnectionError:
        pass
    else:
        raise AssertionError("the intake went on with its conclusion unannounced")
    assert world.log == [] and world.checkpoints == {}
    assert intake.unannounced == {PARTITION: [intake.shards[PARTITION].experiments["x"].conclusion]}
