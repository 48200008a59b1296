"""The first start after the upgrade to checkpointed breakers (a committed offset, no
checkpoint): the owners adopt every published breaker of their partitions at once, so an open
breaker no outcome reaches is in the partition's first checkpoint and is probed on time."""

from __future__ import annotations

import time
from typing import Any

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
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def lab(infra_env: Any, tmp_path: Any) -> Any:
    lab = CircuitLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.close()


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


async def test_an_upgraded_partition_checkpoints_and_probes_an_open_breaker_without_outcomes(
    lab: CircuitLab,
) -> None:
    settings = lab.healer_settings(breaker_checkpoint_interval_s=0.5)
    partitions = lab.outcomes.partitions
    target = partition_for(circuit_key("openai", "avoided"), partitions)
    # a breaker of the same partition that does get outcomes: without eager adoption the
    # partition's first checkpoint is written for it, without the avoided one
    sibling = next(
        model
        for model in (f"model-{i}" for i in range(100))
        if partition_for(circuit_key("openai", model), partitions) == target
    )
    now = float(int(time.time()))  # whole seconds: exact through the ISO 8601 of the topic
    opened = CircuitState(
        "openai", "avoided", CircuitStatus.OPEN, 1.0, 20, 20, 60.0,
        opened_at=now - 30.0, next_probe_at=now + 2.0, reason="failure rate",
        updated_at=now - 30.0,
    )  # fmt: skip
    await lab.producer.send_and_wait(lab.circuits.name, opened.to_json(), key=opened.key.encode())
    await commit_as_the_version_without_checkpoints(lab, settings)
    row = f"{settings.breaker_checkpoint_name}:p{target}"
    assert await lab.store.load(row) is None
    view = lab.reader()
    await view.start()
    classifier = ErrorClassifier()

    async def first_checkpoint() -> Checkpoint | None:
        return await lab.store.load(row)

    def half_open() -> CircuitState | None:
        state = view.get("openai", "avoided")
        return state if state is not None and state.state is CircuitStatus.HALF_OPEN else None

    try:
        async with breaker_pipeline(settings, lambda: classifier, view, lab.store) as owners:
            await wait_until(lambda: len(owners.shards) == partitions, 60, "the owner to own all")
            await lab.succeed("openai", sibling, 1)
            saved = await wait_until(first_checkpoint, 60, "the partition's first checkpoint")
            board = board_from_state(saved.state_dict()["board"], breaker_config(settings))
            avoided = board.breakers.get(("openai", "avoided"))
            assert avoided is not None, sorted(board.breakers)
            assert (avoided.opened_at, avoided.next_probe_at) == (now - 30.0, now + 2.0)
            assert avoided.status in {CircuitStatus.OPEN, CircuitStatus.HALF_OPEN}
            probing = await wait_until(half_open, 30, "the owner's tick to half-open it")
            assert probing.updated_at >= now + 2.0
            assert probing.opened_at == now - 30.0
    finally:
        await view.stop()


async def test_an_upgraded_partition_adopts_lazily_when_the_circuits_topic_is_not_read_in_time(
    lab: CircuitLab, caplog: pytest.LogCaptureFixture
) -> None:
    """A view that does not read on (its reader started, its loop not): the owner waits
    ``breaker_adopt_wait_s``, warns, and its breakers adopt their states when outcomes come."""
    settings = lab.healer_settings(breaker_adopt_wait_s=0.5)
    now = float(int(time.time()))
    opened = CircuitState(
        "openai", "avoided", CircuitStatus.OPEN, 1.0, 20, 20, 60.0,
        opened_at=now - 30.0, next_probe_at=now + 600.0, reason="failure rate",
        updated_at=now - 30.0,
    )  # fmt: skip
    await lab.producer.send_and_wait(lab.circuits.name, opened.to_json(), key=opened.key.encode())
    await commit_as_the_version_without_checkpoints(lab, settings)
    view = lab.reader()
    await view.reader.start()  # assigned at the beginning, never polled
    classifier = ErrorClassifier()
    try:
        with caplog.at_level("WARNING", logger="finops.healer.adapters.breaker_shards"):
            async with breaker_pipeline(settings, lambda: classifier, view, lab.store) as owners:
                await wait_until(
                    lambda: len(owners.shards) == lab.outcomes.partitions,
                    60,
                    "the owner to own all",
                )
                assert [shard.board.breakers for shard in owners.shards.values()] == [{}, {}, {}]
                assert owners.dirty == set()
        late = [r for r in caplog.records if "not read in time" in r.getMessage()]
        assert len(late) == lab.outcomes.partitions, [r.getMessage() for r in caplog.records]
    finally:
        await view.reader.stop()
