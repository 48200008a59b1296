"""A conclusion is recorded (and announced from its record) before any checkpoint that holds
it is saved, and PostgreSQL's record decides.

:class:`~finops.common.owned_partitions.OwnedPartitions` applies a poll a turn at a time and
releases its lock between two turns, so a rebalance may checkpoint a partition (and forget it)
before :meth:`AnalysisIntake.after_batch`. Saved unrecorded, a conclusion would be lost in a
crash before the record: the next owner loads the concluded experiment, drops its later
events as ``experiment_concluded``, and the experiment stays running in PostgreSQL for good.
A replay after a crash between the record and the checkpoint may reach another conclusion:
the one recorded first stands, in the checkpoint and on the topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.structs import TopicPartition
from stream_fakes import (
    OtherTask,
    Poll,
    ScriptedConsumer,
    crash_after_first,
    two_variant_definition,
)

from finops.common.checkpoints import Checkpoint
from finops.common.log_position import ResumePlan
from finops.common.partitions import partition_for
from finops.experiments.adapters import analysis_intake, operator_follow, replay_ends
from finops.experiments.adapters.analysis_intake import AnalysisIntake
from finops.experiments.adapters.repository import Announcement, Experiment
from finops.experiments.domain.analysis import ExperimentAnalysis
from finops.experiments.domain.conclusions import OPERATOR_STOP, recorded_decision
from finops.experiments.domain.definition import ExperimentNotFound
from finops.experiments.domain.experiment_state import ExperimentState, experiment_results
from finops.experiments.domain.tagged import Tagged, encode_tagged

TOPIC = "finops.experiment-events.v1"
EXPERIMENTS_TOPIC = "finops.experiments.v1"
PARTITIONS = 3
EXPERIMENT = "x"
PARTITION = partition_for(EXPERIMENT, PARTITIONS)
DEFINITION = two_variant_definition(max_duration_s=3600)


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


class World:
    """The broker's experiments topic, PostgreSQL's experiments, audit outbox and checkpoint
    rows, and what reached them, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.broker_down = False
        #: the checkpoints saved before PostgreSQL (or the process) goes down for good
        self.saves_left: int | None = None
        #: an operator stops the experiment just before the analysis records its conclusion
        self.operator_stops_first = False
        #: PostgreSQL goes down as the analysis records the counts of an operator's stop
        self.stop_counts_refused = False
        self.checkpoints: dict[str, Checkpoint] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}  # the results other instances serve
        self.announced: list[dict[str, Any]] = []  # the bodies on finops.experiments.v1
        self.outbox: list[Announcement] = []  # the decisions recorded, not announced yet
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
        self.announced.append(body)
        self.log.append(("announced", f"{body['kind']} {body['experiment_id']}"))

    # the checkpoint store
    async def load(self, name: str) -> Checkpoint | None:
        return self.checkpoints.get(name)

    async def save(
        self, name: str, checkpoint: Checkpoint, snapshots: Any, *, position: int | None
    ) -> bool:
        if self.saves_left is not None:
            if self.saves_left == 0:
                raise ConnectionResetError("PostgreSQL is gone")
            self.saves_left -= 1
        self.log.append(("saved", name))
        self.checkpoints[name] = checkpoint
        self.snapshots.update(snapshots or {})
        return True

    async def snapshot(self, experiment_id: str) -> dict[str, Any] | None:
        return self.snapshots.get(experiment_id)

    # the experiments' repository
    async def get(self, experiment_id: str) -> Experiment:
        return self.experiment

    async def all(self) -> list[Experiment]:
        return [self.experiment]

    @asynccontextmanager
    async def unannounced(self) -> AsyncIterator[list[Any]]:
        """As the repository's: the waiting ones, marked announced when the block ends
        without an exception."""
        pending = list(self.outbox)
        yield pending
        del self.outbox[: len(pending)]

    async def conclude(
        self,
        experiment_id: str,
        status: str,
        decision: dict[str, Any],
        actor: str,
        *,
        announce: bool = False,
    ) -> bool:
        self.log.append(("recorded", f"{status} {experiment_id}"))
        if self.operator_stops_first:
            stopped = self.experiment.started_at + timedelta(seconds=1)  # type: ignore[operator]
            self.experiment = replace(self.experiment, status="stopped", ended_at=stopped)
        if self.experiment.status != "running":
            return False
        decided = datetime.now(UTC)
        self.experiment = replace(
            self.experiment, status=status, ended_at=decided, decision=decision
        )
        if announce:
            self.outbox.append(
                Announcement(
                    len(self.log),
                    experiment_id,
                    DEFINITION.name,
                    DEFINITION.task_type,
                    status,
                    status,
                    decided,
                    DEFINITION,
                    json.loads(json.dumps(decision)),
                )
            )
        return True

    async def record_stop_counts(self, experiment_id: str, counts: list[int]) -> bool:
        if self.stop_counts_refused:
            raise ConnectionResetError("PostgreSQL is gone")
        self.log.append(("stop counts", f"{counts} {experiment_id}"))
        if self.experiment.status != "stopped" or self.experiment.stop_counts is not None:
            return False
        self.experiment = replace(self.experiment, stop_counts=list(counts))
        return True

    def stop(self, after_s: float = 1.0) -> datetime:
        """An operator stops the experiment ``after_s`` seconds after its start; when."""
        stopped = self.experiment.started_at + timedelta(seconds=after_s)  # type: ignore[operator]
        self.experiment = replace(self.experiment, status="stopped", ended_at=stopped)
        return stopped

    def saved_conclusion(self) -> dict[str, Any] | None:
        checkpoint = self.checkpoints[f"experiments:{PARTITION}"]
        state = ExperimentAnalysis.from_state(checkpoint.state_dict())
        return state.experiments[EXPERIMENT].conclusion


async def owner(
    world: World,
    polls: list[Poll] | None = None,
    per_turn: int = PER_TURN,
    events: list[Tagged] = EVENTS,
    log_start: int = 0,
) -> tuple[AnalysisIntake, ScriptedConsumer]:
    """An instance that owns the experiment's partition; its consumer reads ``polls`` (by
    default one poll of all the experiment's calls) from the partition's checkpoint (else
    from ``log_start``, the first offset the log's retention kept), the record at offset ``o``
    holding ``events[o]``; the log ends after the last of ``events``."""

    async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
        return ResumePlan("cluster", dict(saved))

    consumer = ScriptedConsumer(
        asyncio.Event(), TOPIC, lambda partition, offset: encode_tagged([events[offset]])
    )
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
    intake.records_per_turn = per_turn
    consumer.ends = {PARTITION: len(events)}
    consumer.starts = {PARTITION: log_start}
    await intake.adopt({PARTITION})
    consumer.polls = polls or [Poll({PARTITION: list(range(2 * PER_TURN))})]
    first = consumer.polls[0].records[PARTITION][0]
    if first == log_start and f"experiments:{PARTITION}" not in world.checkpoints:
        assert consumer.from_beginning == [TopicPartition(TOPIC, PARTITION)]
    else:
        assert consumer.sought == {TopicPartition(TOPIC, PARTITION): first}
    return intake, consumer


async def test_a_conclusion_checkpointed_by_a_release_between_two_turns_was_recorded_first():
    world = World()
    intake, consumer = await owner(world)
    other = OtherTask()
    other.first = lambda: intake.release({PARTITION})  # a rebalance after the first turn
    # the process dies after the rebalance: no after_batch
    assert await crash_after_first(intake, consumer, other) is None
    assert world.saved_conclusion() is not None  # the next owner drops every later call...
    # ...so the decision was written, and announced from its record, before that checkpoint
    assert world.log == [
        ("recorded", f"decided {EXPERIMENT}"),
        ("announced", f"decision {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    assert world.experiment.status == "decided" and world.outbox == []
    assert world.announced == [{"kind": "decision", **world.saved_conclusion()}]
    assert intake.shards == {} and intake.unrecorded == {}


async def test_a_decision_the_broker_refuses_is_recorded_saved_and_announced_when_it_is_back():
    world = World()
    world.broker_down = True
    intake, consumer = await owner(world)
    other = OtherTask()
    other.first = lambda: intake.release({PARTITION})
    assert await crash_after_first(intake, consumer, other) is None
    # recorded, so checkpointed; its announcement waits in the outbox
    assert world.log == [
        ("recorded", f"decided {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    conclusion = world.saved_conclusion()
    assert conclusion is not None and conclusion["winner"] == "B"
    assert world.experiment.status == "decided" and len(world.outbox) == 1
    # any instance announces it once the broker is back: what PostgreSQL recorded
    world.broker_down = False
    assert await intake.publish_announcements() == 1
    assert world.announced == [{"kind": "decision", **conclusion}]
    assert world.outbox == []


async def test_a_conclusion_postgresql_does_not_take_stops_the_intake_unsaved():
    world = World()
    intake, consumer = await owner(world)
    failed = False

    async def refused(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionResetError("PostgreSQL is gone")

    world.conclude = refused  # type: ignore[method-assign]
    # the intake's supervisor starts a new intake from the checkpoints on this failure
    try:
        await intake.run(consumer.stop)
    except ConnectionResetError:
        failed = True
    assert failed, "the intake went on with its conclusion unrecorded"
    assert world.log == [] and world.checkpoints == {}
    assert intake.unrecorded == {PARTITION: [intake.shards[PARTITION].experiments["x"].conclusion]}


#: the replay's clock: past the experiment's max_duration_s
LATER = SimpleNamespace(
    time=lambda: datetime.now(UTC).timestamp() + 2 * DEFINITION.max_duration_s,
    monotonic=time.monotonic,
)


def set_clock(monkeypatch: pytest.MonkeyPatch, clock: Any) -> None:
    """The intake's clock (``time``, in each module of the intake that reads it)."""
    for module in (analysis_intake, operator_follow):
        monkeypatch.setattr(module, "time", clock)


@pytest.mark.parametrize("broker_down", [False, True], ids=["announced", "not-announced"])
async def test_a_replay_after_a_crash_before_the_checkpoint_holds_and_announces_the_recorded_one(
    monkeypatch: pytest.MonkeyPatch, broker_down: bool
):
    world = World()
    # the first owner checkpoints the first calls, then concludes on the next poll, records
    # the decision (announced unless the broker is down), and dies at the checkpoint
    start = 40
    assert start < CONCLUDING
    intake, consumer = await owner(
        world, [Poll({PARTITION: list(range(start))}), Poll({PARTITION: list(range(start, 220))})]
    )
    intake.checkpoint_interval_s = 0.0
    world.saves_left = 1
    world.broker_down = broker_down
    with pytest.raises(ConnectionResetError):
        await intake.run(consumer.stop)
    first = intake.shards[PARTITION].experiments[EXPERIMENT].conclusion
    assert first is not None and first["status"] == "decided" and first["winner"] == "B"
    assert world.experiment.decision is not None
    assert world.experiment.decision["decided_at"] == first["decided_at"]
    assert world.saved_conclusion() is None  # the checkpoint before the conclusion
    assert len(world.outbox) == int(broker_down)
    # the next owner replays from that checkpoint, in turns of 10 calls, an hour later: its
    # first turn has no deciding look, and the experiment expires
    world.saves_left, world.broker_down = None, False
    set_clock(monkeypatch, LATER)
    successor, successor_consumer = await owner(
        world, [Poll({PARTITION: list(range(start, 220))})], per_turn=10
    )
    await successor.run(successor_consumer.stop)
    assert ("recorded", f"stopped {EXPERIMENT}") in world.log  # it reached a stop: refused
    # its checkpoint holds the decision recorded, and every announcement is that one
    assert world.saved_conclusion() == first
    assert successor.shards[PARTITION].experiments[EXPERIMENT].conclusion == first
    assert world.experiment.status == "decided"
    assert world.announced == [{"kind": "decision", **first}]
    assert world.outbox == []


async def test_an_operators_stop_recorded_first_stands_and_no_decision_is_announced():
    world = World()
    world.operator_stops_first = True
    intake, consumer = await owner(world)
    await intake.run(consumer.stop)
    kept = world.saved_conclusion()
    assert kept is not None
    # the stop stands, and the calls the analysis counted are recorded as its counts
    assert world.log == [
        ("recorded", f"decided {EXPERIMENT}"),
        ("stop counts", f"{kept['n']} {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    assert world.experiment.stop_counts == kept["n"] and sum(kept["n"]) == CONCLUDING
    assert (kept["status"], kept["winner"], kept["winner_arm"], kept["losers"]) == (
        "stopped",
        None,
        None,
        [],
    )
    assert kept["reason"] == OPERATOR_STOP
    assert world.experiment.ended_at is not None
    assert kept["decided_at"] == world.experiment.ended_at.isoformat()
    assert world.announced == [] and world.outbox == []


async def test_an_operators_stop_seen_by_a_refresh_is_dated_at_the_stop():
    """The refresh that finds an operator's stop halts the analysis at the stop's time, as
    a replay that PostgreSQL refuses does (settle): one stop, one time."""
    world = World()
    intake, _ = await owner(world)
    await intake._refresh()  # tracks the running experiment
    assert intake.shards[PARTITION].is_tracked(EXPERIMENT)
    stopped = world.experiment.started_at + timedelta(seconds=1)  # type: ignore[operator]
    world.experiment = replace(world.experiment, status="stopped", ended_at=stopped)
    await intake._refresh()
    kept = intake.shards[PARTITION].experiments[EXPERIMENT].conclusion
    assert kept is not None
    assert (kept["status"], kept["reason"]) == ("stopped", OPERATOR_STOP)
    assert kept["decided_at"] == stopped.isoformat()


#: the calls of the experiment as a client that retries sends them: every 9th call a second
#: time, a few calls later (the analysis drops the second as a duplicate)
RETRIED = [
    e for i, e in enumerate(EVENTS[:300]) for e in [e, *([EVENTS[i - 3]] if i % 9 == 8 else [])]
]


def counts(state: Any) -> list[tuple[int, int, float]]:
    """An experiment's statistics that tell which calls were counted: per variant, how many,
    how many succeeded, and their cost."""
    return [(int(s.n), int(s.successes), round(float(s.cost_sum), 12)) for s in state.stats]


def _decided_on() -> tuple[list[tuple[int, int, float]], int]:
    """The counts of the calls that decide the experiment (each once: the retried calls are
    of earlier ones), and how many retries come before the last of them."""
    scratch = ExperimentAnalysis()
    scratch.track(EXPERIMENT, DEFINITION, started_at=0.0)
    scratch.observe_many(EVENTS[:CONCLUDING], 1.0)
    seen: set[str] = set()
    retries = 0
    for event in RETRIED:
        if len(seen) == CONCLUDING:
            break
        retries += event.event_id in seen
        seen.add(event.event_id)
    return counts(scratch.experiments[EXPERIMENT]), retries


DECIDED_ON, RETRIES_BEFORE = _decided_on()


async def first_owner_decides_and_dies(world: World, end: int) -> Any:
    """The first owner of the partition (no checkpoint yet) reads calls 0..end, decides,
    records the decision and dies at the checkpoint that would hold it; its experiment's
    state."""
    intake, consumer = await owner(world, [Poll({PARTITION: list(range(end))})], events=RETRIED)
    world.saves_left = 0
    with pytest.raises(ConnectionResetError):
        await intake.run(consumer.stop)
    world.saves_left = None
    state = intake.shards[PARTITION].experiments[EXPERIMENT]
    assert state.conclusion is not None and state.conclusion["winner"] == "B"
    assert counts(state) == DECIDED_ON and RETRIES_BEFORE > 0
    assert world.checkpoints == {}  # no checkpoint ever held the experiment
    assert world.experiment.status == "decided" and world.experiment.decision is not None
    assert world.experiment.decision["n"] == [c[0] for c in counts(state)]
    assert world.announced == [{"kind": "decision", **state.conclusion}]
    return state


async def test_a_replay_of_an_experiment_no_checkpoint_held_counts_it_up_to_the_recorded_decision(
    monkeypatch: pytest.MonkeyPatch,
):
    """The next owner meets a decided experiment it does not track: it counts its replayed
    calls (each once) up to the decision recorded, holds that decision, and does not record or
    announce another."""
    world = World()
    end = 250
    first = await first_owner_decides_and_dies(world, end)
    # the next owner replays the partition from its beginning, in two polls, an hour later
    # (past max_duration_s: the experiment must not expire on fewer calls)
    set_clock(monkeypatch, LATER)
    successor, consumer = await owner(
        world,
        [Poll({PARTITION: list(range(30))}), Poll({PARTITION: list(range(30, end))})],
        per_turn=10,
        events=RETRIED,
    )
    await successor.run(consumer.stop)
    # the results (the owner's live state) count the calls the decision was made on
    results = experiment_results(
        EXPERIMENT, DEFINITION, await successor.published_state(EXPERIMENT)
    )
    assert [(v["n"], v["successes"]) for v in results["variants"]] == [
        (n, successes) for n, successes, _ in counts(first)
    ]
    assert results["duplicates_dropped"] >= RETRIES_BEFORE
    assert results["decision"] == {
        k: first.conclusion[k] for k in ("winner", "reason", "decided_at")
    }
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    assert counts(state) == counts(first)
    assert state.conclusion == first.conclusion
    # and so do the ones other instances serve, from the checkpoint's snapshot
    saved = ExperimentState.from_dict(world.snapshots[EXPERIMENT])
    assert counts(saved) == counts(first) and saved.conclusion == first.conclusion
    assert world.saved_conclusion() == first.conclusion
    # the decision stands, recorded and announced once
    assert [entry for entry in world.log if entry[0] == "recorded"] == [
        ("recorded", f"decided {EXPERIMENT}")
    ]
    assert world.announced == [{"kind": "decision", **first.conclusion}]
    assert world.outbox == []
    assert world.experiment.decision == recorded_decision(first.conclusion)


async def test_a_replay_cut_by_a_checkpoint_counts_no_call_twice():
    """The next owner checkpoints halfway through its replay (before the calls of the
    decision) and the one after it goes on from there: every call counted once."""
    world = World()
    end = 250
    first = await first_owner_decides_and_dies(world, end)
    successor, consumer = await owner(world, [Poll({PARTITION: list(range(60))})], events=RETRIED)
    await successor.run(consumer.stop)  # checkpoints at offset 60 on the way out
    halfway = successor.shards[PARTITION].experiments[EXPERIMENT]
    assert halfway.conclusion is None and 0 < sum(c[0] for c in counts(halfway)) < 60
    assert world.saved_conclusion() is None
    third, consumer = await owner(world, [Poll({PARTITION: list(range(60, end))})], events=RETRIED)
    await third.run(consumer.stop)
    state = third.shards[PARTITION].experiments[EXPERIMENT]
    assert counts(state) == counts(first)
    assert state.duplicates >= RETRIES_BEFORE
    assert state.conclusion == first.conclusion == world.saved_conclusion()
    assert [entry for entry in world.log if entry[0] == "recorded"] == [
        ("recorded", f"decided {EXPERIMENT}")
    ]
    assert world.announced == [{"kind": "decision", **first.conclusion}]


#: the first offset the log's retention kept when the next owner replays it
KEPT_FROM = 20


async def test_a_replay_the_logs_retention_cut_short_of_the_decision_holds_it_at_the_log_end(
    monkeypatch: pytest.MonkeyPatch,
):
    """The log's retention dropped the first calls the decision counted, and no call came
    after the deciding one: the replay cannot reach the recorded counts. Once it has read
    the log to its end it holds the recorded decision as it stands, over the calls it
    counted (not a running experiment waiting for calls that will not come), and records and
    announces nothing again."""
    world = World()
    end = CONCLUDING + RETRIES_BEFORE  # the deciding call is the log's last
    first = await first_owner_decides_and_dies(world, end)
    assert first.conclusion is not None
    set_clock(monkeypatch, LATER)  # past max_duration_s: it must not expire
    successor, consumer = await owner(
        world,
        [Poll({PARTITION: list(range(KEPT_FROM, end))})],
        per_turn=10,
        events=RETRIED[:end],
        log_start=KEPT_FROM,
    )
    await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    replayed = [int(s.n) for s in state.stats]
    recorded = [c[0] for c in counts(first)]
    assert all(r < c for r, c in zip(replayed, recorded, strict=True))
    assert sum(replayed) == len({e.event_id for e in RETRIED[KEPT_FROM:end]})
    assert state.conclusion == first.conclusion and state.recorded is None
    assert world.saved_conclusion() == first.conclusion
    results = experiment_results(
        EXPERIMENT, DEFINITION, await successor.published_state(EXPERIMENT)
    )
    assert [v["n"] for v in results["variants"]] == replayed
    assert results["decision"] == {
        k: first.conclusion[k] for k in ("winner", "reason", "decided_at")
    }
    assert [entry for entry in world.log if entry[0] == "recorded"] == [
        ("recorded", f"decided {EXPERIMENT}")
    ]
    assert world.announced == [{"kind": "decision", **first.conclusion}]


async def test_a_replay_cut_short_by_retention_counts_no_call_past_the_log_end_it_was_given(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """As above, but calls made after the decision are in the log too, and one poll reads
    across the end the log had when the replay began to follow the decision: the calls at and
    past that end are not counted towards the recorded counts (they would fill the room the
    dropped calls left), the recorded decision stands over the calls before it, and the
    warning names what was replayed against what was recorded."""
    world = World()
    end = CONCLUDING + RETRIES_BEFORE  # the deciding call is the log's last at the decision
    first = await first_owner_decides_and_dies(world, end)
    set_clock(monkeypatch, LATER)
    later_calls = 40
    successor, consumer = await owner(
        world,
        [
            Poll({PARTITION: list(range(KEPT_FROM, KEPT_FROM + 10))}),
            Poll({PARTITION: list(range(KEPT_FROM + 10, end + later_calls))}),
        ],
        per_turn=1_000,  # the second poll in one turn: it reads across the end
        events=RETRIED[: end + later_calls],
        log_start=KEPT_FROM,
    )
    consumer.ends = {PARTITION: end}  # the log's end when the replay noted it
    with caplog.at_level(logging.WARNING, logger=replay_ends.log.name):
        await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    replayed = [int(s.n) for s in state.stats]
    assert sum(replayed) == len({e.event_id for e in RETRIED[KEPT_FROM:end]})
    assert sum(replayed) < sum(c[0] for c in counts(first))
    assert state.conclusion == first.conclusion == world.saved_conclusion()
    warnings = [r for r in caplog.records if "short of the recorded counts" in r.getMessage()]
    assert [(w.replayed, w.recorded) for w in warnings] == [  # type: ignore[attr-defined]
        (replayed, [c[0] for c in counts(first)])
    ]
    assert [entry for entry in world.log if entry[0] == "recorded"] == [
        ("recorded", f"decided {EXPERIMENT}")
    ]


async def test_a_broker_that_does_not_answer_for_the_log_end_delays_the_end_of_a_replay(
    monkeypatch: pytest.MonkeyPatch,
):
    """The log's end is asked again after the next batch when the broker times out, instead
    of ending the intake: the replay cut short by retention still ends, at the same counts."""
    world = World()
    end = CONCLUDING + RETRIES_BEFORE
    first = await first_owner_decides_and_dies(world, end)
    set_clock(monkeypatch, LATER)
    successor, consumer = await owner(
        world,
        [
            Poll({PARTITION: list(range(KEPT_FROM, end - 30))}),
            Poll({PARTITION: []}),
            Poll({PARTITION: list(range(end - 30, end))}),
        ],
        per_turn=10,
        events=RETRIED[:end],
        log_start=KEPT_FROM,
    )
    answer = consumer.end_offsets
    asked: list[str] = []

    async def times_out_once(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        asked.append("timeout" if not asked else "answered")
        if asked == ["timeout"]:
            raise KafkaTimeoutError()
        return await answer(partitions)

    consumer.end_offsets = times_out_once  # type: ignore[method-assign]
    await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    assert asked[:2] == ["timeout", "answered"]
    assert sum(int(s.n) for s in state.stats) == len({e.event_id for e in RETRIED[KEPT_FROM:end]})
    assert state.conclusion == first.conclusion == world.saved_conclusion()


#: the calls the first owner counts before it sees the operator's stop (too few to decide)
STOPPED_AT = 50
assert STOPPED_AT < CONCLUDING
#: the calls in the log when the next owner replays it
REPLAYED = 90


#: the calls a checkpoint holds, the experiment running, when ``held_running``
HELD = 20


async def first_owner_sees_a_stop_and_dies(world: World, held_running: bool = False) -> datetime:
    """The first owner of the partition counts calls 0..STOPPED_AT (an operator stops the
    experiment while it waits for the last ten), its next refresh halts it, and it dies at
    the checkpoint that would hold the stop; when the operator stopped it. No checkpoint
    held the experiment before, unless ``held_running``: then one holds it running, with
    calls 0..HELD."""
    stopped: list[datetime] = []
    intake: AnalysisIntake | None = None

    async def operator_stops() -> None:
        stopped.append(world.stop())

    async def no_more_checkpoints() -> None:
        assert intake is not None
        intake.checkpoint_interval_s = 1e9  # but the one a conclusion asks for

    intake, consumer = await owner(
        world,
        [
            Poll({PARTITION: list(range(HELD))}),
            Poll({PARTITION: list(range(HELD, STOPPED_AT - 10))}, during=no_more_checkpoints),
            Poll({PARTITION: list(range(STOPPED_AT - 10, STOPPED_AT))}, during=operator_stops),
        ],
    )
    intake.checkpoint_interval_s = 0.0 if held_running else 1e9
    intake.refresh_interval_s = 0.0
    world.saves_left = int(held_running)
    with pytest.raises(ConnectionResetError):
        await intake.run(consumer.stop)
    world.saves_left = None
    state = intake.shards[PARTITION].experiments[EXPERIMENT]
    assert state.conclusion is not None and state.conclusion["reason"] == OPERATOR_STOP
    assert list(world.checkpoints) == ([f"experiments:{PARTITION}"] if held_running else [])
    return stopped[0]


async def test_the_counts_of_an_operators_stop_are_recorded_and_a_replay_counts_up_to_them():
    """The next owner meets an experiment an operator stopped that no checkpoint held: it
    counts its replayed calls up to the counts recorded when the analysis saw the stop (not
    zeros, and not the calls after the stop), holds the stop, and records nothing else."""
    world = World()
    stopped = await first_owner_sees_a_stop_and_dies(world)
    half = STOPPED_AT // 2
    # recorded before the checkpoint that died: the calls counted when the stop was seen
    assert world.experiment.stop_counts == [half, half]
    assert world.log == [("stop counts", f"[{half}, {half}] {EXPERIMENT}")]
    successor, consumer = await owner(
        world, [Poll({PARTITION: list(range(REPLAYED))})], per_turn=10
    )
    successor.refresh_interval_s = 0.0
    await successor.run(consumer.stop)
    results = experiment_results(
        EXPERIMENT, DEFINITION, await successor.published_state(EXPERIMENT)
    )
    assert [v["n"] for v in results["variants"]] == [half, half]
    assert results["decision"] == {
        "winner": None,
        "reason": OPERATOR_STOP,
        "decided_at": stopped.isoformat(),
    }
    kept = world.saved_conclusion()
    assert kept is not None and kept["n"] == [half, half] and kept["status"] == "stopped"
    assert [entry[0] for entry in world.log] == ["stop counts", "saved"]
    assert world.announced == [] and world.outbox == []


async def test_a_replay_from_a_checkpoint_holding_the_experiment_running_stops_at_the_counts():
    """The checkpoint before the crash holds the experiment running (calls 0..HELD): the next
    owner follows the stop's recorded counts from its first turn, not its first refresh after
    the poll, so it counts the replayed calls up to them and drops the later ones."""
    world = World()
    stopped = await first_owner_sees_a_stop_and_dies(world, held_running=True)
    half = STOPPED_AT // 2
    assert world.experiment.stop_counts == [half, half]
    held = ExperimentAnalysis.from_state(
        world.checkpoints[f"experiments:{PARTITION}"].state_dict()
    ).experiments[EXPERIMENT]
    assert held.conclusion is None and [int(s.n) for s in held.stats] == [HELD // 2] * 2
    successor, consumer = await owner(world, [Poll({PARTITION: list(range(HELD, REPLAYED))})])
    await successor.run(consumer.stop)
    shard = successor.shards[PARTITION]
    state = shard.experiments[EXPERIMENT]
    assert [int(s.n) for s in state.stats] == [half, half]
    assert state.conclusion is not None and state.conclusion["n"] == [half, half]
    assert state.conclusion["decided_at"] == stopped.isoformat()
    assert shard.ignored == {"experiment_concluded": REPLAYED - STOPPED_AT}
    assert world.saved_conclusion() == state.conclusion
    assert [entry[0] for entry in world.log] == ["saved", "stop counts", "saved"]
    assert world.announced == [] and world.outbox == []


async def test_a_replay_after_a_crash_before_the_stop_counts_counts_the_calls_and_records_them():
    """The first owner dies recording the counts of the stop it saw: the next owner tracks
    the stopped experiment as it replays its calls, halts it at its first refresh and records
    what it counted then: not zeros, but the calls after the stop the poll held too (here the
    whole replay, one poll; the first refresh comes after it)."""
    world = World()
    world.stop_counts_refused = True
    await first_owner_sees_a_stop_and_dies(world)
    assert world.experiment.stop_counts is None and world.log == []
    world.stop_counts_refused = False
    successor, consumer = await owner(
        world, [Poll({PARTITION: list(range(REPLAYED))})], per_turn=40
    )
    successor.refresh_interval_s = 0.0
    await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    half = REPLAYED // 2
    assert [int(s.n) for s in state.stats] == [half, half]
    assert world.experiment.stop_counts == [half, half]
    assert state.conclusion is not None and state.conclusion["reason"] == OPERATOR_STOP
    assert world.saved_conclusion() == state.conclusion
    assert world.announced == [] and world.outbox == []


async def test_the_calls_right_after_a_start_count_though_a_call_met_the_experiment_as_a_draft():
    """A call tagged with the experiment while it was a draft is dropped; the calls right
    after the operator starts it count, before any refresh (a draft is not remembered as not
    running, as an unknown or ended experiment is for a second)."""
    world = World()
    world.experiment = replace(world.experiment, status="draft", started_at=None)

    async def operator_starts() -> None:
        world.experiment = replace(world.experiment, status="running", started_at=datetime.now(UTC))

    intake, consumer = await owner(
        world,
        [
            Poll({PARTITION: [0, 1]}),
            Poll({PARTITION: list(range(2, 22))}, during=operator_starts),
        ],
    )
    intake.refresh_interval_s = 1e9  # no refresh: the calls alone make the experiment known
    await intake.run(consumer.stop)
    shard = intake.shards[PARTITION]
    assert sum(int(s.n) for s in shard.experiments[EXPERIMENT].stats) == 20
    assert shard.ignored == {"unknown_or_not_running_experiment": 2}


async def test_a_stopped_experiment_a_replay_tracks_is_halted_before_any_checkpoint():
    """The next owner tracks a stopped experiment whose counts were not recorded as it meets
    its calls: the refresh after that batch halts it and records its counts before the
    checkpoint, however long the refresh interval (saved running, a crash at that checkpoint
    made the owner after it track it again, and so on)."""
    world = World()
    world.stop()
    successor, consumer = await owner(world, [Poll({PARTITION: list(range(STOPPED_AT))})])
    successor.refresh_interval_s = 1e9
    successor.checkpoint_interval_s = 0.0
    await successor.run(consumer.stop)
    half = STOPPED_AT // 2
    assert world.experiment.stop_counts == [half, half]
    assert world.log[:2] == [
        ("stop counts", f"[{half}, {half}] {EXPERIMENT}"),
        ("saved", f"experiments:{PARTITION}"),
    ]
    kept = world.saved_conclusion()
    assert kept is not None and kept["reason"] == OPERATOR_STOP and kept["n"] == [half, half]


async def test_a_stop_replayed_from_a_log_cut_short_of_its_counts_is_held_at_the_log_end():
    """An operator's stop whose counts the replay cannot reach (the log's retention dropped
    the first calls, and agents made none after the stop) is held at the end of the log, as
    a decision is: stopped, over the calls replayed, nothing recorded again."""
    world = World()
    stopped = await first_owner_sees_a_stop_and_dies(world)
    half = STOPPED_AT // 2
    assert world.experiment.stop_counts == [half, half]
    successor, consumer = await owner(
        world,
        [Poll({PARTITION: list(range(KEPT_FROM, STOPPED_AT))})],
        per_turn=10,
        events=EVENTS[:STOPPED_AT],
        log_start=KEPT_FROM,
    )
    successor.refresh_interval_s = 0.0
    await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    left = (STOPPED_AT - KEPT_FROM) // 2
    assert [int(s.n) for s in state.stats] == [left, left]
    kept = state.conclusion
    assert kept is not None and kept["reason"] == OPERATOR_STOP and kept["n"] == [half, half]
    assert kept["decided_at"] == stopped.isoformat()
    assert world.saved_conclusion() == kept
    assert world.experiment.stop_counts == [half, half]
    assert [entry[0] for entry in world.log] == ["stop counts", "saved"]
    assert world.announced == [] and world.outbox == []


async def test_calls_naming_unknown_ids_are_not_remembered_past_a_second(
    monkeypatch: pytest.MonkeyPatch,
):
    """Each unknown experiment id met on a call is remembered as not running for a second,
    and forgotten at the first refresh after it: a flood of calls naming ever new ids does
    not grow the instance's memory for good."""
    world = World()

    async def unknown(experiment_id: str) -> Experiment:
        raise ExperimentNotFound(experiment_id)

    world.get = unknown  # type: ignore[method-assign]
    clock = [1000.0]
    set_clock(monkeypatch, SimpleNamespace(time=time.time, monotonic=lambda: clock[0]))
    calls = [replace(event, experiment_id=f"u{i}") for i, event in enumerate(EVENTS[:300])]
    intake, consumer = await owner(
        world, [Poll({PARTITION: list(range(300))})], per_turn=100, events=calls
    )
    intake.refresh_interval_s = 1e9
    await intake.run(consumer.stop)
    assert len(intake._not_running) == 300
    clock[0] += operator_follow.NEGATIVE_CACHE_S
    await intake._refresh()
    assert intake._not_running == {}


async def test_a_stop_replayed_from_a_log_whose_records_all_expired_is_held_at_once():
    """The checkpoint holds the experiment running (calls 0..HELD); an operator's stop was
    recorded with its counts after it; then the log's retention dropped every record (its
    start is its end). The replay has nothing left to read: the stop is held at the first
    refresh, over the calls the checkpoint held, instead of waiting for a new record to read
    past the end."""
    world = World()
    stopped = await first_owner_sees_a_stop_and_dies(world, held_running=True)
    half = STOPPED_AT // 2
    assert world.experiment.stop_counts == [half, half]
    successor, consumer = await owner(world, [Poll({PARTITION: [HELD]})])
    successor.refresh_interval_s = 0.0
    # nothing to read: every record expired, the log starts where it ends
    consumer.polls = [Poll({PARTITION: []}), Poll({PARTITION: []})]
    consumer.starts = consumer.ends = {PARTITION: STOPPED_AT}
    await successor.run(consumer.stop)
    state = successor.shards[PARTITION].experiments[EXPERIMENT]
    assert [int(s.n) for s in state.stats] == [HELD // 2] * 2
    kept = state.conclusion
    assert kept is not None and kept["reason"] == OPERATOR_STOP and kept["n"] == [half, half]
    assert kept["decided_at"] == stopped.isoformat()
    assert world.saved_conclusion() == kept
    assert world.experiment.stop_counts == [half, half]
    assert world.announced == [] and world.outbox == []


async def test_a_replay_that_reads_on_asks_the_broker_for_the_logs_start_only_once_stuck():
    """Where a replay is read up to was asked of the broker (its log's start) after every
    batch while any replay was short of its end: one request a batch over a long replay. It is
    asked only of a partition whose next offset has not moved since the last batch."""
    intake, consumer = await owner(World(), [])
    intake._replay_ends = {EXPERIMENT: 100}
    following = {PARTITION: [EXPERIMENT]}
    for offset in (10, 20, 30):  # a replay reading on
        intake.offsets[PARTITION] = offset
        assert await intake._read_up_to(following) == {PARTITION: offset}
    assert consumer.start_asks == 0
    consumer.starts = {PARTITION: 100}  # the records from 30 on expired meanwhile
    assert await intake._read_up_to(following) == {PARTITION: 100}  # stuck at 30: asked
    assert consumer.start_asks == 1
