"""The first start after the upgrade to checkpointed breakers (a committed offset, no
checkpoint): the owners adopt every published breaker of their partitions at once, so an open
breaker no outcome reaches is in the partition's first checkpoint and is probed on time."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition
from circuit_lab import CircuitLab
from support import wait_until

from finops.common.checkpoints import Checkpoint
from finops.common.circuits import CircuitState, CircuitStatus, circuit_key
from finops.common.kafka import make_consumer
from finops.common.partitions import partition_for
from finops.healer.adapters.circuits_stream import breaker_config, breaker_pipeline
from finops.healer.domain.breaker_state import board_from_state
from finops.healer.domain.breakers import Breaker
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

pytestmark = pytest.mark.integration


async def commit_as_the_version_without_checkpoints(
    lab: CircuitLab, settings: HealerSettings
) -> None:
    """The owner group's committed offsets that version left, with no checkpoint row."""
    consumer = make_consumer(lab.kafka, group_id=settings.breaker_owner_group)
    await consumer.start()
    try:
        tps = [TopicPartition(lab.outcomes.name, p) for p in range(lab.outcomes.partitions)]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


class Upgrade:
    """An open breaker published by the version without checkpoints, which also left the
    owner group's committed offsets (and no checkpoint row); ``sibling`` is a breaker keyed to
    the same outcome partition, which does get outcomes."""

    def __init__(self, lab: CircuitLab, settings: HealerSettings, probe_in_s: float) -> None:
        self.lab = lab
        self.settings = settings
        partitions = lab.outcomes.partitions
        self.partition = partition_for(circuit_key("openai", "avoided"), partitions)
        self.sibling = next(
            model
            for model in (f"model-{i}" for i in range(100))
            if partition_for(circuit_key("openai", model), partitions) == self.partition
        )
        now = float(int(time.time()))  # whole seconds: exact through the topic's ISO 8601
        self.opened = CircuitState(
            "openai", "avoided", CircuitStatus.OPEN, 1.0, 20, 20, 60.0,
            opened_at=now - 30.0, next_probe_at=now + probe_in_s, reason="failure rate",
            updated_at=now - 30.0,
        )  # fmt: skip
        self.row = f"{settings.breaker_checkpoint_name}:p{self.partition}"

    async def publish(self) -> None:
        opened = self.opened
        await self.lab.producer.send_and_wait(
            self.lab.circuits.name, opened.to_json(), key=opened.key.encode()
        )
        await commit_as_the_version_without_checkpoints(self.lab, self.settings)
        assert await self.lab.store.load(self.row) is None

    async def first_checkpoint(self) -> Checkpoint | None:
        return await self.lab.store.load(self.row)

    def checkpointed_avoided(self, saved: Checkpoint) -> Breaker | None:
        board = board_from_state(saved.state_dict()["board"], breaker_config(self.settings))
        return board.breakers.get(("openai", "avoided"))


async def test_an_upgraded_partition_checkpoints_and_probes_an_open_breaker_without_outcomes(
    lab: CircuitLab,
) -> None:
    settings = lab.healer_settings(breaker_checkpoint_interval_s=0.5)
    upgrade = Upgrade(lab, settings, probe_in_s=2.0)
    opened = upgrade.opened
    await upgrade.publish()
    view = lab.reader()
    await view.start()
    classifier = ErrorClassifier()

    def half_open() -> CircuitState | None:
        state = view.get("openai", "avoided")
        return state if state is not None and state.state is CircuitStatus.HALF_OPEN else None

    try:
        async with breaker_pipeline(
            settings, lambda: classifier, view, lab.store
        ) as owners_running:
            owners = owners_running.owners
            await wait_until(lambda: len(owners.shards) == 3, 60, "the owner to own all")
            # without eager adoption the first checkpoint is written for the sibling alone
            await lab.succeed("openai", upgrade.sibling, 1)
            saved = await wait_until(upgrade.first_checkpoint, 60, "the first checkpoint")
            avoided = upgrade.checkpointed_avoided(saved)
            assert avoided is not None, saved.state_dict()["board"]
            assert (avoided.opened_at, avoided.next_probe_at) == (
                opened.opened_at,
                opened.next_probe_at,
            )
            assert avoided.status in {CircuitStatus.OPEN, CircuitStatus.HALF_OPEN}
            probing = await wait_until(half_open, 30, "the owner's tick to half-open it")
            assert opened.next_probe_at is not None
            assert probing.updated_at >= opened.next_probe_at
            assert probing.opened_at == opened.opened_at
    finally:
        await view.stop()


async def test_an_upgraded_partition_not_adopted_in_time_is_adopted_before_its_checkpoint(
    lab: CircuitLab, caplog: pytest.LogCaptureFixture
) -> None:
    """A view that does not read on at first (its reader started, its loop not): the owner
    waits ``breaker_adopt_wait_s`` once, warns, and adopts nothing; once the view reads, the
    partition's first checkpoint (after an outcome of the sibling) adopts the open breaker."""
    settings = lab.healer_settings(breaker_adopt_wait_s=1.0, breaker_checkpoint_interval_s=0.5)
    upgrade = Upgrade(lab, settings, probe_in_s=600.0)
    await upgrade.publish()
    view = lab.reader()
    await view.reader.start()  # assigned at the beginning, not polled yet
    classifier = ErrorClassifier()
    stop_reading = asyncio.Event()
    reading: asyncio.Task[None] | None = None
    try:
        with caplog.at_level("WARNING", logger="finops.healer.adapters.breaker_shards"):
            async with breaker_pipeline(
                settings, lambda: classifier, view, lab.store
            ) as owners_running:
                owners = owners_running.owners
                await wait_until(lambda: len(owners.shards) == 3, 60, "the owner to own all")
                assert [shard.board.breakers for shard in owners.shards.values()] == [{}, {}, {}]
                assert owners.dirty == set()
                late = [r for r in caplog.records if "not read in time" in r.getMessage()]
                assert len(late) == 3, [r.getMessage() for r in caplog.records]
                reading = asyncio.create_task(view.reader.run(stop_reading))
                await lab.succeed("openai", upgrade.sibling, 1)
                saved = await wait_until(upgrade.first_checkpoint, 60, "the first checkpoint")
                avoided = upgrade.checkpointed_avoided(saved)
                assert avoided is not None, saved.state_dict()["board"]
                assert avoided.status is CircuitStatus.OPEN
                assert owners.shards[upgrade.partition].unadopted is False
    finally:
        stop_reading.set()
        if reading is not None:
            await reading
        await view.reader.stop()
