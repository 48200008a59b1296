"""The healer's outcome intake leaves the event loop to the API between batches, and applies
each kind of record to its ledger (fakes for the consumer and the store)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from stream_fakes import BufferedConsumer, KeptProducer

from finops.common.checkpoints import Checkpoint
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.common.topics import HEALING
from finops.healer.adapters.effectiveness import OutcomeIntake
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.ledger_checkpoint import EncodedChanges
from finops.healer.domain.ledger_segments import SegmentIndex

BATCHES = 50


class MemoryStore:
    """A ledger store in memory: the last checkpoint loaded, the changes saved.

    ``gone`` plays a checkpoint removed as stale: a save that is not complete is refused
    once, as the PostgreSQL store refuses it. ``failures`` saves fail as if PostgreSQL were
    down.
    """

    def __init__(self) -> None:
        self.saved: Checkpoint | None = None
        self.changes: list[EncodedChanges] = []
        self.gone = False
        self.failures = 0

    async def load(self, name: str) -> Checkpoint | None:
        return self.saved

    async def save_changes(
        self,
        name: str,
        writer: str,
        changes: EncodedChanges,
        offsets: dict[str, int],
        cluster_id: str | None,
    ) -> bool:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("PostgreSQL is down")
        if self.gone and not changes.complete:
            self.gone = False
            return False
        self.changes.append(changes)
        self.saved = Checkpoint(json.loads(changes.small), offsets, cluster_id=cluster_id)
        return True


def advice_value(advice_id: str) -> bytes:
    return json.dumps(
        {
            "advice_id": advice_id,
            "kind": "rate_limit",
            "provider": "openai",
            "model": "gpt-4o",
            "remedy": {"action": "wait"},
            "time": datetime.now(UTC).isoformat(),
            "follows": None,
        }
    ).encode()


async def test_the_intake_yields_between_batches_and_checkpoints_at_the_end() -> None:
    stop = asyncio.Event()
    consumer = BufferedConsumer(HEALING.name, stop, polls=BATCHES, body=advice_value("a1"))
    store = MemoryStore()
    intake = OutcomeIntake(
        HealingLedger(),
        consumer,  # type: ignore[arg-type]
        store,
        ErrorClassifier(),
        name="t",
        checkpoint_interval_s=3600,
    )
    turns = 0

    async def probe() -> None:
        nonlocal turns
        while consumer.polls < BATCHES:
            turns += 1
            await asyncio.sleep(0)

    prober = asyncio.create_task(probe())
    await intake.run(stop)
    prober.cancel()
    assert consumer.polls == BATCHES and turns >= BATCHES - 1
    assert store.saved is not None
    assert store.saved.offsets == {f"{HEALING.name}:0": BATCHES + 1}
    assert intake.records == BATCHES and list(intake.ledger.pending) == ["a1"]


def stream_count(topic: str, outcome: str) -> float:
    labels = {"service": "healer", "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("finops_stream_events_total", labels) or 0.0


async def read_one(topic: str, body: bytes) -> tuple[OutcomeIntake, KeptProducer]:
    """The intake after reading one record ``body`` of ``topic``, dead letters kept."""
    stop = asyncio.Event()
    producer = KeptProducer()
    intake = OutcomeIntake(
        HealingLedger(),
        BufferedConsumer(topic, stop, polls=1, body=body),  # type: ignore[arg-type]
        MemoryStore(),
        ErrorClassifier(),
        name="t",
        producer=producer,  # type: ignore[arg-type]
    )
    await intake.run(stop)
    return intake, producer


@pytest.mark.parametrize(
    "body",
    [b"garbage", b"[1, 2]", advice_value("a1").replace(b"rate_limit", b"no_such_kind")],
    ids=["not JSON", "not an object", "unknown kind"],
)
async def test_an_unreadable_advice_is_parked_not_processed(body: bytes) -> None:
    # the intake is finops.healing.v1's only reader: nobody else would park it
    parked = stream_count(HEALING.name, "dead_lettered")
    processed = stream_count(HEALING.name, "processed")
    intake, producer = await read_one(HEALING.name, body)
    [(topic, value, headers)] = producer.sent
    assert (topic, value) == ("finops.healing.v1.dlq", body)
    assert (headers["x-service"], headers["x-origin-topic"]) == (b"healer", b"finops.healing.v1")
    assert headers["x-attempts"] == b"1"
    # every instance reads the whole topic and parks it: each letter names its instance
    assert headers["x-instance"] == f"{socket.gethostname()}:{os.getpid()}".encode()
    assert intake.records == 0 and not intake.ledger.pending
    assert stream_count(HEALING.name, "dead_lettered") == parked + 1
    assert stream_count(HEALING.name, "processed") == processed


@pytest.mark.parametrize("topic", ["agent.cost.v1", "agent.error.v1"])
async def test_an_unreadable_event_is_counted_and_skipped_not_parked_again(topic: str) -> None:
    # the validating agent (agent.error.v1), the optimizer and the experiments service park
    # it; a second dead letter from the healer would be one too many
    intake, producer = await read_one(topic, b"garbage")
    assert producer.sent == [] and intake.records == 0


async def test_a_restored_ledger_replaces_the_fresh_one() -> None:
    ledger = HealingLedger()
    ledger.failed(ErrorKind.AUTH, None, 0.0)
    store = MemoryStore()
    store.saved = Checkpoint(ledger.to_state(), {"agent.error.v1:0": 7}, cluster_id="cluster")
    intake = OutcomeIntake(HealingLedger(), None, store, ErrorClassifier(), name="t")  # type: ignore[arg-type]
    assert await intake.restore() is True
    assert intake.ledger.report()["auth"]["occurrences"] == 1
    assert (intake.offsets, intake.cluster_id) == ({"agent.error.v1:0": 7}, "cluster")


def test_an_error_delivered_twice_is_one_occurrence_across_a_checkpoint() -> None:
    # An SDK retry after a lost 202 publishes the same error event twice (docs/events.md:
    # consumers count an id once): the second copy, before or after a restart, is no new error.
    from finops.common.events import error_event, parse_event

    event = parse_event(
        error_event(
            {
                "agent_id": "bot",
                "task_type": "summarize",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "error": {"status_code": 529, "message": "Overloaded"},
            }
        )
    )
    _, value = event.to_kafka()
    intake = OutcomeIntake(HealingLedger(), None, MemoryStore(), ErrorClassifier(), name="t")  # type: ignore[arg-type]
    intake.apply("agent.error.v1", value)
    intake.apply("agent.error.v1", value)
    assert intake.ledger.report()["overloaded"]["occurrences"] == 1
    restored = HealingLedger.from_state(json.loads(json.dumps(intake.ledger.to_state())))
    intake.ledger = restored
    intake.apply("agent.error.v1", value)
    assert intake.ledger.report()["overloaded"]["occurrences"] == 1


def test_a_ledger_saved_before_it_remembered_error_ids_restores() -> None:
    ledger = HealingLedger()
    ledger.failed(ErrorKind.AUTH, None, 0.0)
    state = ledger.to_state()
    state.pop("error_ids", None)
    assert HealingLedger.from_state(state).report()["auth"]["occurrences"] == 1


def saved_segments(changes: EncodedChanges) -> list[tuple[str, int]]:
    return [(s.part, s.segment) for s in changes.segments]


async def intake_checkpointed_once() -> tuple[MemoryStore, OutcomeIntake]:
    """An intake whose ledger keeps one advice a segment, checkpointed after advice a1."""
    store = MemoryStore()
    ledger = HealingLedger(pending_index=SegmentIndex(segment_size=1))
    intake = OutcomeIntake(ledger, None, store, ErrorClassifier(), name="t")  # type: ignore[arg-type]
    intake.apply(HEALING.name, advice_value("a1"))
    await intake.checkpoint()
    return store, intake


async def test_a_checkpoint_removed_as_stale_is_written_whole_again() -> None:
    store, intake = await intake_checkpointed_once()
    intake.apply(HEALING.name, advice_value("a2"))
    await intake.checkpoint()
    assert [saved_segments(c) for c in store.changes] == [[("pending", 0)], [("pending", 1)]]
    store.gone = True  # another instance removed this one's checkpoint while it was idle
    intake.apply(HEALING.name, advice_value("a3"))
    await intake.checkpoint()
    assert store.changes[-1].complete
    assert saved_segments(store.changes[-1]) == [("pending", 0), ("pending", 1), ("pending", 2)]


async def test_the_segments_of_a_failed_checkpoint_are_in_the_next() -> None:
    store, intake = await intake_checkpointed_once()
    intake.apply(HEALING.name, advice_value("a2"))
    store.failures = 1
    with pytest.raises(ConnectionRefusedError):
        await intake.checkpoint()
    await intake.checkpoint()
    assert saved_segments(store.changes[-1]) == [("pending", 1)]


def test_an_event_on_the_other_types_topic_teaches_the_ledger_nothing() -> None:
    # agent.error.v1 carries agent.error events only, agent.cost.v1 agent.llm_call ones: an
    # event on the other topic is a bad record (the validating agent or the optimizer parks
    # it), counted invalid here, neither an outcome of an advice nor an error occurrence
    from support import llm_call

    from finops.common.events import error_event

    healed_call = json.dumps(llm_call(remedy={"advice_id": "a1"})).encode()
    failed_call = json.dumps(
        error_event(
            {
                "agent_id": "bot",
                "task_type": "summarize",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "error": {"status_code": 529, "message": "Overloaded"},
                "remedy": {"advice_id": "a1"},
            }
        )
    ).encode()
    intake = OutcomeIntake(HealingLedger(), None, MemoryStore(), ErrorClassifier(), name="t")  # type: ignore[arg-type]
    intake.apply(HEALING.name, advice_value("a1"))
    intake.apply("agent.error.v1", healed_call)
    intake.apply("agent.cost.v1", failed_call)
    assert intake.records == 1
    assert not intake.ledger.pending["a1"].resolved
    assert "overloaded" not in intake.ledger.report()
    # on their own topics the same events are an outcome and an occurrence
    intake.apply("agent.cost.v1", healed_call)
    intake.apply("agent.error.v1", failed_call)
    assert intake.records == 3 and intake.ledger.pending["a1"].resolved
    assert intake.ledger.report()["overloaded"]["occurrences"] == 1
