"""Operator settings follow a switch between one worker and partitioned learning, on fakes.

Both kinds of learning record each change in the settings ledger before applying it; the one
worker's restored engine and every partition's loaded engine take the ledger's changes they
have not seen; an engine never lets an older change of a setting override a newer one,
whether it comes from the ledger or, numbered, from the internal topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from test_engine_shards_settings import shards

from finops.common.checkpoints import Checkpoint
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.shard_snapshots import PartitionedLearning
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.adapters.task_type_forward import INPUT_HEADER, OPERATOR
from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine
from finops.optimizer.domain.policy import Objective
from finops.optimizer.service_layer.commands import (
    OperatorChange,
    OperatorCommands,
    reconcile,
    settle,
    take_from_ledger,
)

NANO = ArmSpec("gpt-4.1-nano", "openai")


def budget(budget_id: str, limit_usd: float = 1.0) -> Budget:
    return Budget(budget_id, "team", "search", "day", limit_usd)


class MemoryLedger:
    """The latest change of each setting, numbered from one counter (as the table is)."""

    def __init__(self) -> None:
        self.rows: dict[str, OperatorChange] = {}
        self.drawn = 0
        self.down = False

    async def record(self, change: OperatorChange) -> int:
        if self.down:
            raise ConnectionError("PostgreSQL is down")
        self.drawn += 1
        kept = self.rows.get(change.key)
        if kept is None or (kept.seq or 0) < self.drawn:
            self.rows[change.key] = change.numbered(self.drawn)
        return self.drawn

    async def latest(self) -> list[OperatorChange]:
        return sorted(self.rows.values(), key=lambda c: c.seq or 0)


class Store:
    """Checkpoints by name, as PostgreSQL's table keeps them."""

    def __init__(self, rows: dict[str, Checkpoint] | None = None) -> None:
        self.rows = rows if rows is not None else {}

    async def load(self, name: str) -> Checkpoint | None:
        return self.rows.get(name)

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        self.rows[name] = Checkpoint(checkpoint.state_dict(), checkpoint.offsets)


class NoAssignment:
    def assignment(self) -> set[Any]:
        return set()


def one_worker(store: Store, ledger: MemoryLedger | None) -> EventIntake:
    return EventIntake(
        OptimizerEngine(),
        NoAssignment(),  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        store=store,
        ledger=ledger,
    )


class Acked:
    """A producer that keeps what is sent and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    async def send(self, topic: str, value: bytes, **options: Any) -> Any:
        self.sent.append((topic, value, options["partition"]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def settings_of(engine: OptimizerEngine) -> tuple[dict[str, float], Any, list[str], set[str]]:
    return (
        {b.id: b.limit_usd for b in engine.budgets.budgets()},
        engine.objectives().get("summarize", {}).get("quality_floor"),
        sorted(engine.catalog),
        set(engine.withdrawn),
    )


# ---- the rules: settle and reconcile ------------------------------------------------------


def test_an_older_change_of_a_setting_never_overrides_a_newer_one():
    engine = OptimizerEngine()
    assert settle(engine, OperatorChange.put_budget(budget("b", 5.0)).numbered(7))
    assert not settle(engine, OperatorChange.put_budget(budget("b", 1.0)).numbered(3))
    assert not settle(engine, OperatorChange.delete_budget("b").numbered(7))  # seen already
    assert settle(engine, OperatorChange.put_budget(budget("other")).numbered(2))  # other key
    assert settings_of(engine)[0] == {"b": 5.0, "other": 1.0}
    assert engine.operator_seq == {"budget:b": 7, "budget:other": 2}


def test_a_change_without_a_number_from_an_older_version_is_applied_as_it_comes():
    engine = OptimizerEngine()
    settle(engine, OperatorChange.put_budget(budget("b", 5.0)).numbered(7))
    assert settle(engine, OperatorChange.put_budget(budget("b", 1.0)))
    assert settings_of(engine)[0] == {"b": 1.0}
    assert engine.operator_seq == {"budget:b": 7}


def test_a_removal_made_elsewhere_applies_to_an_engine_that_lacks_what_it_removes():
    engine = OptimizerEngine()
    assert settle(engine, OperatorChange.delete_budget("never-here").numbered(1))
    assert settle(engine, OperatorChange.withdraw_arm(NANO.arm_id).numbered(2))
    assert settings_of(engine) == ({}, None, [], {NANO.arm_id})
    assert engine.operator_seq == {"budget:never-here": 1, f"arm:{NANO.arm_id}": 2}


def test_reconcile_applies_in_number_order_only_what_the_engine_has_not_seen():
    engine = OptimizerEngine()
    settle(engine, OperatorChange.put_budget(budget("kept", 3.0)).numbered(4))
    latest = [
        OperatorChange.set_objective("summarize", Objective(quality_floor=0.7)).numbered(9),
        OperatorChange.put_budget(budget("kept", 1.0)).numbered(4),  # the one it has
        OperatorChange.offer_arm(NANO).numbered(6),
        OperatorChange.delete_budget("gone").numbered(5),
    ]
    assert reconcile(engine, latest) == 3
    assert settings_of(engine) == ({"kept": 3.0}, 0.7, [NANO.arm_id], set())
    assert reconcile(engine, latest) == 0  # again: nothing new


async def test_taking_from_the_ledger_logs_how_many_with_the_context(caplog):
    ledger = MemoryLedger()
    await ledger.record(OperatorChange.put_budget(budget("b")))
    engine = OptimizerEngine()
    with caplog.at_level(logging.INFO, "finops.optimizer.service_layer.commands"):
        assert await take_from_ledger(engine, ledger, partition=3) == 1
        assert await take_from_ledger(engine, ledger, partition=3) == 0  # nothing new: no line
        assert await take_from_ledger(engine, None) == 0
    mine = [r for r in caplog.records if r.name == "finops.optimizer.service_layer.commands"]
    taken = [(r.getMessage(), r.partition, r.taken) for r in mine]  # type: ignore[attr-defined]
    assert taken == [("operator changes taken from the settings ledger", 3, 1)]


def test_a_numbered_change_travels_as_json_and_a_bad_number_is_refused():
    change = OperatorChange.delete_budget("b").numbered(12)
    assert OperatorChange.from_json(change.to_json()) == change
    assert OperatorChange.from_json(change.to_json().decode()).seq == 12
    assert OperatorChange.from_json(OperatorChange.delete_budget("b").to_json()).seq is None
    with pytest.raises(TypeError):
        OperatorChange.from_json(json.dumps({"kind": "delete_budget", "args": {}, "seq": "1"}))


def test_a_checkpoint_from_before_the_numbers_restores_and_takes_every_recorded_change():
    before = OptimizerEngine()
    before.set_budget(budget("old", 2.0))
    state = before.to_state()
    del state["operator_seq"]  # as a checkpoint of the previous version
    engine = OptimizerEngine.from_state(state)
    assert engine.operator_seq == {}
    reconcile(engine, [OperatorChange.put_budget(budget("old", 8.0)).numbered(1)])
    assert settings_of(engine)[0] == {"old": 8.0}
    assert OptimizerEngine.from_state(engine.to_state()).operator_seq == {"budget:old": 1}


# ---- the one worker -----------------------------------------------------------------------


async def test_the_one_worker_records_a_change_before_applying_it():
    ledger = MemoryLedger()
    intake = one_worker(Store(), ledger)
    await OperatorCommands(intake).put_budget(budget("b", 4.0))
    assert [(c.key, c.seq) for c in await ledger.latest()] == [("budget:b", 1)]
    assert intake.engine.operator_seq == {"budget:b": 1}

    ledger.down = True  # not recorded: not applied either (503, retried by the operator)
    with pytest.raises(ConnectionError):
        await OperatorCommands(intake).put_budget(budget("b", 9.0))
    assert settings_of(intake.engine)[0] == {"b": 4.0}


async def test_the_one_worker_restored_takes_what_was_recorded_after_its_checkpoint():
    ledger, store = MemoryLedger(), Store()
    first = one_worker(store, ledger)
    await OperatorCommands(first).put_budget(budget("b", 4.0))
    await OperatorCommands(first).put_budget(budget("gone"))
    # meanwhile, partitioned learning: changed, deleted, created (the ledger alone has them,
    # as after a kill -9 before any checkpoint)
    await ledger.record(OperatorChange.put_budget(budget("b", 6.0)))
    await ledger.record(OperatorChange.delete_budget("gone"))
    await ledger.record(OperatorChange.put_budget(budget("new")))
    again = one_worker(store, ledger)
    assert await again.restore()
    assert settings_of(again.engine)[0] == {"b": 6.0, "new": 1.0}


class Saves(Store):
    """Also keeps every checkpoint saved, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[Checkpoint] = []

    async def save(self, name: str, checkpoint: Checkpoint) -> None:
        await super().save(name, checkpoint)
        self.saved.append(self.rows[name])


async def test_a_change_made_while_a_checkpoint_is_serialised_is_in_it_or_taken_again():
    ledger, store = MemoryLedger(), Saves()
    intake = one_worker(store, ledger)
    budgets_done = asyncio.Event()
    parts = intake.engine.state_parts()

    def after_budgets(resume_at: Any = None) -> list[tuple[str, Any]]:
        def mark(build: Any) -> Any:
            budgets_done.set()
            return build()

        return [
            (name, (lambda build=build: mark(build)) if name == "anomalies" else build)
            for name, build in parts
        ]

    intake.engine.state_parts = after_budgets  # type: ignore[method-assign]
    periodic = asyncio.create_task(intake.checkpoint())
    await budgets_done.wait()  # its budgets are serialised, its operator numbers not yet
    await OperatorCommands(intake).put_budget(budget("b", 4.0))
    await periodic
    # kill -9 right after the periodic checkpoint, before the change's own: restored from it
    again = one_worker(Store({"optimizer": store.saved[0]}), ledger)
    await again.restore()
    assert settings_of(again.engine)[0] == {"b": 4.0}
    assert again.engine.operator_seq == {"budget:b": 1}


async def test_a_one_worker_without_a_checkpoint_starts_from_the_ledger():
    ledger = MemoryLedger()
    await ledger.record(OperatorChange.offer_arm(NANO))
    intake = one_worker(Store(), ledger)
    assert not await intake.restore()
    assert list(intake.engine.catalog) == [NANO.arm_id]


# ---- partitioned learning -----------------------------------------------------------------


def partition_shards(rows: dict[str, Checkpoint], ledger: MemoryLedger) -> EngineShards:
    engine_shards = shards(rows)
    engine_shards.ledger = ledger
    return engine_shards


def operator_record(change: OperatorChange) -> Any:
    return SimpleNamespace(
        topic="learning", value=change.to_json(), headers=[(INPUT_HEADER, OPERATOR)]
    )


async def test_a_partition_loaded_takes_the_one_workers_later_changes_and_skips_older_ones():
    ledger = MemoryLedger()
    own = OptimizerEngine()
    during = OperatorChange.put_budget(budget("during", 1.0))
    settle(own, during.numbered(await ledger.record(during)))
    rows = {"optimizer:p2": Checkpoint(own.to_state(), {"learning:2": 5})}
    # then one worker: the budget changed, another created
    await ledger.record(OperatorChange.put_budget(budget("during", 3.0)))
    await ledger.record(OperatorChange.put_budget(budget("after")))
    engine_shards = partition_shards(rows, ledger)
    engine, offsets, _ = await engine_shards.load_shard(2)
    assert offsets == {"learning:2": 5}
    assert settings_of(engine)[0] == {"during": 3.0, "after": 1.0}
    # the partition replays its topic from offset 5: the older change of "during" again
    await engine_shards.handle(2, engine, [operator_record(during.numbered(1))])
    assert settings_of(engine)[0] == {"during": 3.0, "after": 1.0}


async def test_a_new_partition_seeded_from_the_one_worker_checkpoint_takes_the_ledger_too():
    ledger = MemoryLedger()
    store = Store()
    intake = one_worker(store, ledger)
    await OperatorCommands(intake).put_budget(budget("before"))
    await ledger.record(OperatorChange.delete_budget("before"))  # later, elsewhere
    engine, _, _ = await partition_shards(store.rows, ledger).load_shard(0)
    assert settings_of(engine)[0] == {}
    assert engine.operator_seq == {"budget:before": 2}


async def test_partitioned_learning_records_a_change_then_writes_it_numbered_to_every_partition():
    ledger, producer = MemoryLedger(), Acked()
    view = OptimizerEngine()  # what the replica answers from (a FleetView in production)
    learning = PartitionedLearning.__new__(PartitionedLearning)
    learning.ledger = ledger
    learning.producer = producer  # type: ignore[assignment]
    learning.learning_topic = "learning"
    learning.partitions = 3
    learning.reader = SimpleNamespace(view=view)  # type: ignore[assignment]
    answer = await OperatorCommands(learning).put_budget(budget("b", 2.0))
    assert answer["budget"]["id"] == "b"
    written = [(p, OperatorChange.from_json(v)) for _, v, p in producer.sent]
    change = OperatorChange.put_budget(budget("b", 2.0)).numbered(1)
    travelled = OperatorChange.from_json(change.to_json())
    assert written == [(0, travelled), (1, travelled), (2, travelled)]
    assert await ledger.latest() == [change]

    ledger.down = True  # not recorded: written nowhere
    with pytest.raises(ConnectionError):
        await OperatorCommands(learning).delete_budget("b")
    assert len(producer.sent) == 3


async def test_settings_follow_one_worker_to_partitions_to_one_worker_to_partitions():
    ledger, store = MemoryLedger(), Store()
    partition_rows: dict[str, Checkpoint] = store.rows  # one table for both, as in PostgreSQL

    # one worker
    intake = one_worker(store, ledger)
    await intake.restore()
    await OperatorCommands(intake).put_budget(budget("before"))
    await OperatorCommands(intake).set_objective("summarize", Objective(quality_floor=0.5))

    # partitioned: a change goes to the ledger, then (numbered) through the topic
    engine_shards = partition_shards(partition_rows, ledger)
    engine, offsets, _ = await engine_shards.load_shard(1)
    for change in (
        OperatorChange.put_budget(budget("before", 2.0)),
        OperatorChange.put_budget(budget("during")),
        OperatorChange.offer_arm(NANO),
    ):
        numbered = change.numbered(await ledger.record(change))
        await engine_shards.handle(1, engine, [operator_record(numbered)])
    await engine_shards.save_shard(1, engine, {"learning:1": 3})

    # one worker again
    intake = one_worker(store, ledger)
    await intake.restore()
    assert settings_of(intake.engine) == (
        {"before": 2.0, "during": 1.0},
        0.5,
        [NANO.arm_id],
        set(),
    )
    await OperatorCommands(intake).delete_budget("before")
    await OperatorCommands(intake).withdraw_arm(NANO.arm_id)
    await OperatorCommands(intake).set_objective("summarize", Objective(quality_floor=0.6))

    # partitioned again: partition 1 restores its checkpoint, then takes the later changes
    engine, offsets, _ = await partition_shards(partition_rows, ledger).load_shard(1)
    assert offsets == {"learning:1": 3}
    assert settings_of(engine) == ({"during": 1.0}, 0.6, [], {NANO.arm_id})
