"""An operator's start or stop is announced on finops.experiments.v1 from its audit row (the
outbox), on a real broker and PostgreSQL: a broker that refuses the announcement delays it and
fails no request; a start written while no publisher runs is announced after a restart; while
one publisher holds the waiting announcements, another is handed none."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY
from support import wait_until

from finops.experiments.adapters.repository import ExperimentRepository

pytestmark = pytest.mark.integration


async def _unannounced(pool: asyncpg.Pool, eid: str) -> int | None:
    """Operators' changes of ``eid`` not announced yet (None: none recorded at all)."""
    counts = await pool.fetchrow(
        "SELECT count(*) AS changes, count(*) FILTER (WHERE announced_at IS NULL) AS pending "
        "FROM experiment_audit WHERE experiment_id = $1 AND action IN ('start', 'stop')",
        eid,
    )
    return int(counts["pending"]) if counts["changes"] else None


async def _wait_announced(pool: asyncpg.Pool, eid: str, what: str) -> None:
    async def announced() -> bool:
        return await _unannounced(pool, eid) == 0

    await wait_until(announced, 30, what)


async def _announced_once(lab, eid: str, kinds: list[str]) -> list[dict]:
    announced = [m for m in await lab.announcements() if m["experiment_id"] == eid]
    assert [m["kind"] for m in announced] == kinds
    return announced


async def test_a_start_the_broker_refuses_is_answered_and_announced_once_when_it_takes_it(lab):
    failures = REGISTRY.get_sample_value("finops_experiments_announce_failures_total") or 0.0
    async with lab.service() as client:
        await lab.announce_task_type(client)
        intake = client.app.state.intake
        refused: list[dict] = []
        publish = intake.announce

        async def broker_down_once(body: dict) -> None:
            if not refused:
                refused.append(body)
                raise KafkaConnectionError("the broker is down")
            await publish(body)

        intake.announce = broker_down_once
        eid = await lab.create_and_start(client)  # 200, though its announcement was refused
        pool = client.app.state.db
        await _wait_announced(pool, eid, "the start announced")
        stopped = await client.post(f"/api/experiments/{eid}/stop", headers=lab.operator)
        assert stopped.status_code == 200, stopped.text
        await _wait_announced(pool, eid, "the stop announced")
    assert [(b["kind"], b["experiment_id"]) for b in refused] == [("started", eid)]
    assert REGISTRY.get_sample_value("finops_experiments_announce_failures_total") == failures + 1
    started, stopped_body = await _announced_once(lab, eid, ["started", "stopped"])
    assert started["status"] == "running" and started["task_type"] == lab.task_type
    assert stopped_body["status"] == "stopped"


async def test_a_start_written_while_no_publisher_runs_is_announced_after_a_restart(lab):
    async with lab.service() as client:
        await lab.announce_task_type(client)
        eid = await lab.create(client)
    pool = await asyncpg.create_pool(lab.settings.database_url, min_size=2, max_size=2)
    try:
        repo = ExperimentRepository(pool, announce_on=lab.settings.experiments_topic)
        # what a crash right after the start's commit leaves: the start, not announced
        await repo.apply(eid, "start", "ops-ann")
        assert await _unannounced(pool, eid) == 1
        held: list[bool] = []

        async def publish_failing_halfway() -> bool:
            """Be handed the start (the service's publisher may still hold the lock a
            moment), see that a second publisher meanwhile is handed nothing, then fail."""
            with pytest.raises(RuntimeError):
                async with repo.unannounced() as first:
                    if eid in {a.experiment_id for a in first}:
                        async with repo.unannounced() as second:
                            held.append(second == [])
                    raise RuntimeError("the publish failed")
            return bool(held)

        await wait_until(publish_failing_halfway, 30, "the start handed to a publisher")
        assert held == [True]
        assert await _unannounced(pool, eid) == 1  # a failed publish leaves it to the next
        async with lab.service():
            await _wait_announced(pool, eid, "the start announced")
    finally:
        await pool.close()
    [started] = await _announced_once(lab, eid, ["started"])
    assert started["status"] == "running" and started["name"].startswith("exp-")
