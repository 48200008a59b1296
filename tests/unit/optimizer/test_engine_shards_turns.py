"""A partition's batch hands the event loop back as it is applied: a catch-up's batches are
2,000 records, and the API and the consumers' heartbeats share the loop."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from finops.common.log_position import ResumePlan
from finops.common.partitions import HANDLE_AT_ONCE
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.domain.engine import OptimizerEngine


async def resume(saved: object, cluster_id: object) -> ResumePlan:
    return ResumePlan("cluster", {})


class CountingShards(EngineShards):
    """Applies nothing: notes, for each record, how many turns another task has had."""

    def __init__(self) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            topic="learning",
            resume=resume,
            name="optimizer",
            new_engine=OptimizerEngine,
            shards_topic="shards",
            alerts_topic="alerts",
        )
        self.turns = 0
        self.turns_seen: list[int] = []

    def _apply(self, engine: OptimizerEngine, record: Any) -> list[dict[str, Any]]:
        self.turns_seen.append(self.turns)
        return []


async def test_a_long_batch_gives_the_loop_a_turn_every_handle_at_once_records():
    shards = CountingShards()

    async def other_task() -> None:  # a heartbeat, a request: counts each turn it gets
        while True:
            shards.turns += 1
            await asyncio.sleep(0)

    records = [SimpleNamespace(offset=o) for o in range(2000)]
    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)  # it has started
    try:
        await shards.handle(0, OptimizerEngine(), records)
    finally:
        other.cancel()
    assert shards.events == 2000
    # the records applied between two turns of the other task: never more than HANDLE_AT_ONCE
    runs: dict[int, int] = {}
    for turn in shards.turns_seen:
        runs[turn] = runs.get(turn, 0) + 1
    assert max(runs.values()) == HANDLE_AT_ONCE
    assert len(runs) == 2000 // HANDLE_AT_ONCE + 1
