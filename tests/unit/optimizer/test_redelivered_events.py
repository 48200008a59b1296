"""Records read again are counted apart from events the agents sent again.

With two partitioned workers, ``/api/stats/summary``'s ``duplicates`` read 3,229 where the
agents had sent 3,000 events again (local stack, 12,000 events, a ``kill -9`` of one worker):
``finops.optimizer-events.v1`` held 15,229 records for 15,000 sent, the 229 records the killed
worker had forwarded but not committed, forwarded again by the other (at least once). The
owners dropped them by their ids, so calls and spend were right, but counted them as the
agents' resends. The forwarder now says where it read each event (``x-optimizer-source``), and
an id seen again at a position already taken is ``redelivered``.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from stream_fakes import NoStore
from support import llm_call

from finops.common.events import ErrorEvent, LlmCallEvent, error_event
from finops.common.log_position import ResumePlan
from finops.common.topics import AGENT_COST, AGENT_ERROR
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.stream import EventIntake, taken
from finops.optimizer.adapters.task_type_forward import TaskTypeForwarder
from finops.optimizer.domain.analytics import SpendAnalytics
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.records_taken import RecordsTaken

LEARNING = "finops.optimizer-events.v1"
#: where the forwarder read an event (``task_type_forward.SOURCE_HEADER``)
SOURCE_HEADER = "x-optimizer-source"


class Producer:
    """Keeps what is sent to the learning topic, in order, acknowledged at once."""

    def __init__(self) -> None:
        self.records: list[SimpleNamespace] = []

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[None]:
        assert topic == LEARNING
        self.records.append(
            SimpleNamespace(
                topic=topic,
                partition=kw["partition"],
                offset=len(self.records),
                value=value,
                headers=list(kw["headers"]),
            )
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def source_log(unique: int, resent: list[int]) -> list[SimpleNamespace]:
    """``agent.cost.v1`` partition 0: ``unique`` events, then the agents' resends of the
    events numbered ``resent`` (new records of the same events)."""
    events = [llm_call(task_type=f"task-{n % 4}", cost_usd=0.01) for n in range(unique)]
    bodies = [json.dumps(e).encode() for e in events] + [
        json.dumps(events[n]).encode() for n in resent
    ]
    return [
        SimpleNamespace(topic="agent.cost.v1", partition=0, offset=o, value=body, headers=[])
        for o, body in enumerate(bodies)
    ]


def owners() -> EngineShards:
    return EngineShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        topic=LEARNING,
        resume=None,  # type: ignore[arg-type]
        name="optimizer",
        new_engine=OptimizerEngine,
        shards_topic="shards",
        alerts_topic="alerts",
    )


def count(outcome: str) -> float:
    labels = {"topic": LEARNING, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_optimizer_events_total", labels) or 0.0


async def test_records_forwarded_again_after_a_kill_are_not_counted_as_agents_resends():
    log = source_log(40, resent=[3, 7, 11, 30, 31])  # 45 records, 5 of them resends
    producer = Producer()
    forwarder = TaskTypeForwarder(
        None,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        learning_topic=LEARNING,
        partitions=6,
        experiments_topic=None,
    )
    # a forwarder forwards every record, is killed before it commits the last 12; the next
    # one reads them again from the committed offset and forwards them again
    for record in log:
        await forwarder.forward(record)
    for record in log[-12:]:
        await forwarder.forward(record)
    assert len(producer.records) == 57

    # each learning partition's owner takes its records in the order they were written
    shards = owners()
    engines: dict[int, OptimizerEngine] = {}
    before = {outcome: count(outcome) for outcome in ("applied", "duplicate", "redelivered")}
    for record in producer.records:
        shards._apply(engines.setdefault(record.partition, OptimizerEngine()), record)
    summary = SpendAnalytics.merged(e.analytics for e in engines.values()).summary()
    assert (summary["events"], summary["fleet"]["calls"]) == (40, 40)
    assert summary["fleet"]["spend_usd"] == pytest.approx(0.4)
    # the five resends the agents sent; the twelve records read again apart
    assert summary["duplicates"] == 5
    assert summary["redelivered"] == 12
    after = {outcome: count(outcome) for outcome in before}
    assert {k: after[k] - before[k] for k in before} == {
        "applied": 40,
        "duplicate": 5,
        "redelivered": 12,
    }
    # told by where the forwarder read them
    assert {dict(r.headers).get(SOURCE_HEADER) for r in producer.records[-12:]} == {
        f"agent.cost.v1:0:{o}".encode() for o in range(33, 45)
    }


def test_an_id_seen_again_is_redelivered_only_in_a_record_already_taken():
    sa = SpendAnalytics()
    first, second = (LlmCallEvent.model_validate(llm_call(cost_usd=0.01)) for _ in range(2))
    assert sa.observe(first, ("agent.cost.v1:0", 10))
    assert not sa.observe(first, ("agent.cost.v1:0", 11))  # the agent sent it again
    assert not sa.observe(first, ("agent.cost.v1:0", 10))  # the first record, read again
    assert not sa.observe(first, ("agent.cost.v1:0", 11))  # the resend, read again
    assert not sa.observe(first)  # where it was read is not known: a resend, as before
    assert sa.observe(second, ("agent.cost.v1:1", 3))  # another partition's records
    assert not sa.observe(second, ("agent.cost.v1:1", 3))
    assert not sa.observe(second, ("agent.cost.v1:1", 2))  # sent again: not the record at 3
    s = sa.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (2, 3, 3)

    # the positions and the count go through a checkpoint; a view has the count only
    restored = SpendAnalytics.from_state(json.loads(json.dumps(sa.to_state())))
    assert not restored.observe(second, ("agent.cost.v1:1", 3))
    assert restored.summary()["redelivered"] == 4
    view = SpendAnalytics.from_state(sa.to_state(remember_ids=False))
    assert view.summary()["redelivered"] == 3
    assert view.to_state()["records_taken"]["partitions"] == {}
    # a checkpoint written before they were counted apart: every one was a duplicate
    old = sa.to_state()
    old["duplicates"] += old.pop("redelivered")
    del old["records_taken"]
    older = SpendAnalytics.from_state(old)
    assert (older.summary()["duplicates"], older.summary()["redelivered"]) == (6, 0)
    assert not older.observe(first, ("agent.cost.v1:0", 10))  # no record known yet
    assert older.summary()["duplicates"] == 7
    # one of the version before the records taken (e87b306): the counts apart, and the newest
    # offset taken per partition, which is not used
    between = sa.to_state()
    del between["records_taken"]
    between["positions"] = {"agent.cost.v1:0": 11, "agent.cost.v1:1": 3}
    s = SpendAnalytics.from_state(between).summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (2, 3, 3)


def test_the_outcome_of_an_event_says_which():
    engine = OptimizerEngine()
    event = LlmCallEvent.model_validate(llm_call(cost_usd=0.01))
    outcomes = []
    for offset in (5, 6, 5):
        before = engine.tally
        engine.take(event, ("agent.cost.v1:0", offset))
        outcomes.append(taken(before, engine))
    assert outcomes == ["applied", "duplicate", "redelivered"]


def test_an_engine_restored_from_its_checkpoint_tells_the_outcomes_apart():
    # every event after a restart went to the dead-letter topic: from_state, which builds
    # the engine without __init__, left the error counter of read-again records unset
    engine = OptimizerEngine()
    engine.take(LlmCallEvent.model_validate(llm_call(cost_usd=0.01)), ("agent.cost.v1:0", 0))
    restored = OptimizerEngine.from_state(json.loads(json.dumps(engine.to_state())))
    event = LlmCallEvent.model_validate(llm_call(cost_usd=0.01))
    error = ErrorEvent.model_validate(
        error_event(
            {
                "agent_id": "bot",
                "task_type": "qa",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "error": {"status_code": 503, "message": "Service unavailable"},
            }
        )
    )
    outcomes = []
    for take in (
        lambda: restored.take(event, ("agent.cost.v1:0", 1)),
        lambda: restored.take(event, ("agent.cost.v1:0", 1)),
        lambda: restored.take(error, ("agent.error.v1:0", 0)),
        lambda: restored.take(error, ("agent.error.v1:0", 0)),
    ):
        before = restored.tally
        take()
        outcomes.append(taken(before, restored))
    assert outcomes == ["applied", "redelivered", "applied", "redelivered"]


def calls(n: int) -> list[LlmCallEvent]:
    return [LlmCallEvent.model_validate(llm_call(cost_usd=0.01)) for _ in range(n)]


def test_resends_in_a_replaced_log_are_duplicates_not_redelivered():
    # 1,000 records taken from agent.cost.v1:0, then the log is replaced (a new broker, the
    # topic recreated): its offsets start again at 0, below the offsets taken. Agents send
    # 10 new events, then 5 of the old ones again. Before 2c67f41's follow-up the 5 resends
    # read ``redelivered`` until new offsets passed the old high-water mark.
    sa = SpendAnalytics()
    old = calls(1000)
    for offset, event in enumerate(old):
        assert sa.observe(event, ("agent.cost.v1:0", offset))
    replaced = calls(10) + old[:5]
    for offset, event in enumerate(replaced):
        sa.observe(event, ("agent.cost.v1:0", offset))
    s = sa.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (1010, 5, 0)
    # the new log's records read again are still told apart
    assert not sa.observe(replaced[3], ("agent.cost.v1:0", 3))
    assert not sa.observe(replaced[12], ("agent.cost.v1:0", 12))
    assert (sa.summary()["duplicates"], sa.summary()["redelivered"]) == (5, 2)


def test_a_resend_read_first_from_a_replaced_log_is_a_duplicate():
    # the same, but the agents' resends come first: the positions kept before (the newest
    # offset taken per partition, set back by a new event only) read them ``redelivered``
    sa = SpendAnalytics()
    old = calls(1000)
    for offset, event in enumerate(old):
        assert sa.observe(event, ("agent.cost.v1:0", offset))
    replaced = [old[500], old[7], old[999], *calls(2), old[1]]
    for offset, event in enumerate(replaced):
        sa.observe(event, ("agent.cost.v1:0", offset))
    s = sa.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (1002, 4, 0)
    # read again, each of the new log's records is one
    for offset, event in enumerate(replaced):
        assert not sa.observe(event, ("agent.cost.v1:0", offset))
    s = sa.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (1002, 4, 6)


async def test_partitioned_learning_counts_a_resend_read_first_from_a_replaced_log_as_a_duplicate():
    # two-worker path: the forwarder names each record's source position; the owners had
    # taken 200 records of agent.cost.v1:0 when the topic was recreated. The new log starts
    # with 3 of the agents' resends, then 20 new events; its forwarder is killed before it
    # commits the last 8 records and they are forwarded again.
    old = source_log(200, resent=[])
    new_events = [llm_call(task_type=f"task-{n % 4}", cost_usd=0.01) for n in range(20)]
    bodies = [old[n].value for n in (150, 3, 199)] + [json.dumps(e).encode() for e in new_events]
    replaced = [
        SimpleNamespace(topic="agent.cost.v1", partition=0, offset=o, value=body, headers=[])
        for o, body in enumerate(bodies)
    ]
    producer = Producer()
    forwarder = TaskTypeForwarder(
        None,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        learning_topic=LEARNING,
        partitions=6,
        experiments_topic=None,
    )
    for record in old + replaced + replaced[-8:]:
        await forwarder.forward(record)
    shards = owners()
    engines: dict[int, OptimizerEngine] = {}
    before = {outcome: count(outcome) for outcome in ("applied", "duplicate", "redelivered")}
    for record in producer.records:
        shards._apply(engines.setdefault(record.partition, OptimizerEngine()), record)
    summary = SpendAnalytics.merged(e.analytics for e in engines.values()).summary()
    assert (summary["events"], summary["duplicates"], summary["redelivered"]) == (220, 3, 8)
    after = {outcome: count(outcome) for outcome in before}
    assert {k: after[k] - before[k] for k in before} == {
        "applied": 220,
        "duplicate": 3,
        "redelivered": 8,
    }


def intake() -> EventIntake:
    return EventIntake(
        OptimizerEngine(),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        NoStore(),  # type: ignore[arg-type]
    )


def cost_record(event: LlmCallEvent, offset: int) -> SimpleNamespace:
    body = json.dumps(event.model_dump(mode="json")).encode()
    return SimpleNamespace(topic=AGENT_COST.name, partition=0, offset=offset, value=body)


def cost_count(outcome: str) -> float:
    labels = {"topic": AGENT_COST.name, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_optimizer_events_total", labels) or 0.0


async def test_the_one_worker_intake_counts_a_record_read_again_as_redelivered():
    one = intake()
    event = calls(1)[0]
    outcomes = ("applied", "duplicate", "redelivered")
    before = {o: cost_count(o) for o in outcomes}
    await one._apply(cost_record(event, 0))
    await one._apply(cost_record(event, 1))  # an agent sent it again
    await one._apply(cost_record(event, 0))  # the first record, read again
    after = {o: cost_count(o) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == dict.fromkeys(outcomes, 1)
    s = one.engine.analytics.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (1, 1, 1)


async def test_the_one_worker_intake_forgets_the_positions_of_a_log_read_again_as_another():
    # a checkpoint that took 1,000 records of agent.cost.v1:0; the broker lost its data
    # (a new cluster id): the partition is read from its earliest offset, the state kept
    one = intake()
    old = calls(1000)
    for offset, event in enumerate(old):
        await one._apply(cost_record(event, offset))
    one.offsets = {f"{AGENT_COST.name}:0": 1000}
    one.resume_from(
        ResumePlan("new-cluster", {}, {f"{AGENT_COST.name}:0": "the broker's cluster id changed"})
    )
    # the agents send 3 of the old events again before any new one, then 2 new events
    for offset, event in enumerate(old[:3] + calls(2)):
        await one._apply(cost_record(event, offset))
    s = one.engine.analytics.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (1002, 3, 0)
    assert one.offsets == {}


def error_record(body: bytes, offset: int, forwarded_from: int) -> SimpleNamespace:
    """An error event on the learning topic, forwarded from ``agent.error.v1:0``."""
    return SimpleNamespace(
        topic=LEARNING,
        partition=0,
        offset=offset,
        value=body,
        headers=[
            ("x-optimizer-input", b"event"),
            (SOURCE_HEADER, f"{AGENT_ERROR.name}:0:{forwarded_from}".encode()),
        ],
    )


def test_an_error_event_forwarded_again_is_redelivered_not_a_duplicate():
    body = json.dumps(
        error_event(
            {
                "agent_id": "bot",
                "task_type": "qa",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "error": {"status_code": 503, "message": "Service unavailable"},
            }
        )
    ).encode()
    shards, engine = owners(), OptimizerEngine()
    outcomes = ("applied", "duplicate", "redelivered")
    before = {o: count(o) for o in outcomes}
    shards._apply(engine, error_record(body, 0, forwarded_from=7))
    shards._apply(engine, error_record(body, 1, forwarded_from=8))  # the agent sent it again
    shards._apply(engine, error_record(body, 2, forwarded_from=7))  # forwarded again
    after = {o: count(o) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == dict.fromkeys(outcomes, 1)
    assert (engine.errors_seen, engine.errors_redelivered) == (1, 1)
    # the summary counts calls only
    s = engine.analytics.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (0, 0, 0)


def test_the_records_taken_are_bounded_by_offsets_and_go_through_a_checkpoint():
    taken = RecordsTaken(reach=4)
    for offset in range(10):
        assert not taken.read_again("agent.cost.v1:0", offset, 100 + offset, new=True)
    assert not taken.read_again("agent.error.v1:0", 0, 7, new=True)
    # pruned around offset 5, then 6 to 9 added: offsets 1 to 9
    assert len(taken) == 9 + 1
    restored = RecordsTaken.from_state(json.loads(json.dumps(taken.to_state())))
    assert restored.read_again("agent.cost.v1:0", 9, 109, new=False)
    assert restored.read_again("agent.cost.v1:0", 5, 105, new=False)  # 4 offsets back
    assert not restored.read_again("agent.cost.v1:0", 0, 100, new=False)  # forgotten
    assert restored.read_again("agent.error.v1:0", 0, 7, new=False)
    restored.forget(["agent.error.v1:0"])
    assert not restored.read_again("agent.error.v1:0", 0, 7, new=False)
    # a state written before the records were kept has none
    assert len(RecordsTaken.from_state(None)) == 0


def test_an_engine_taking_a_share_of_a_partition_keeps_a_share_of_its_offsets():
    # partitioned learning: each engine takes the records of its task types, a sixth here;
    # what it keeps is bounded by offsets, so about a sixth of them, not as many records
    taken = RecordsTaken(reach=600)
    for offset in range(0, 60_000, 6):
        taken.read_again("agent.cost.v1:0", offset, offset, new=True)
    assert len(taken) <= 2 * 600 // 6 + 1
    assert taken.read_again("agent.cost.v1:0", 59_400, 59_400, new=False)  # 600 back
    # a replaced log (offsets from 0 again) drops the old log's records with its first prune
    for offset in range(0, 1200, 6):
        taken.read_again("agent.cost.v1:0", offset, -offset & 0xFFFF, new=True)
    assert len(taken) <= 2 * 600 // 6 + 1
    assert taken.read_again("agent.cost.v1:0", 1194, -1194 & 0xFFFF, new=False)


def test_a_one_worker_checkpoint_keeps_only_the_records_its_intake_can_read_again():
    # the one worker's intake resumes from its saved offsets: the records before them were
    # checkpointed too (up to 2.6 MB), though it never reads them again
    taken = RecordsTaken()
    for offset in range(10):
        taken.read_again("agent.cost.v1:0", offset, 100 + offset, new=True)
    taken.read_again("agent.error.v1:0", 0, 7, new=True)
    kept = RecordsTaken.from_state(json.loads(json.dumps(taken.to_state({"agent.cost.v1:0": 8}))))
    assert len(kept) == 2 + 1  # offsets 8 and 9; a partition without an offset keeps them all
    assert kept.read_again("agent.cost.v1:0", 9, 109, new=False)
    assert not kept.read_again("agent.cost.v1:0", 5, 105, new=False)
    # a checkpoint's offsets follow every record taken: none is kept, nor its partitions
    done = {"agent.cost.v1:0": 10, "agent.error.v1:0": 1}
    assert taken.to_state(done) == {"reach": taken.reach, "partitions": {}}
    # without offsets (partitioned learning's engines, whose records are forwarded) all of them
    assert len(RecordsTaken.from_state(taken.to_state())) == 11


def test_an_event_read_again_after_a_restart_of_the_one_worker_counts_once():
    engine = OptimizerEngine()
    events = calls(10)
    for offset, event in enumerate(events):
        engine.take(event, ("agent.cost.v1:0", offset))
    state = dict((name, build()) for name, build in engine.state_parts({"agent.cost.v1:0": 10}))
    assert state["analytics"]["records_taken"]["partitions"] == {}
    restored = OptimizerEngine.from_state(json.loads(json.dumps(state)))
    outcomes = []
    for event, offset in ((events[5], 5), (events[9], 10), (calls(1)[0], 11)):
        before = restored.tally
        restored.take(event, ("agent.cost.v1:0", offset))
        outcomes.append(taken(before, restored))
    # a record before the offsets (which the intake does not read again) and an agent's
    # resend are not counted again; only the new event is
    assert outcomes == ["duplicate", "duplicate", "applied"]
    s = restored.analytics.summary()
    assert (s["events"], s["duplicates"], s["redelivered"]) == (11, 2, 0)
