"""Partitioned learning on a real broker and PostgreSQL: two known limits of issue 14 lifted.

* A replica that has just started is not ready until its view holds every partition state
  published before it started: it never answers from the empty view it starts with.
* The ids of the fleet's budget alerts raised move with partition 0's checkpoint: the next
  worker to own it does not raise them again, and still raises the new ones.

Each ``async with lab.worker()`` is one optimizer worker (a process, in production); the next
one to start restores the partitions' checkpoints, as a worker taking over does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from support import llm_call, send_acknowledged, wait_until
from test_optimizer_live import Lab

from finops.common.kafka import make_consumer
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.optimizer.adapters.shard_snapshots import ShardSnapshotReader
from finops.optimizer.domain.budgets import alert_id, period_bounds
from finops.optimizer.settings import OptimizerSettings

pytestmark = pytest.mark.integration

TASK_TYPES = [f"task-{i}" for i in range(8)]  # spread over several learning partitions
DAY = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # event time: alerts are per day


class PartitionedLab(Lab):
    """The live tests' lab (isolated topics, a producer playing the fleet), its optimizer
    one worker of partitioned learning on topics and groups of its own."""

    def __init__(self, infra: Any, tmp_path: Any) -> None:
        super().__init__(infra, tmp_path)
        tag = self.cost.name.rsplit(".", 1)[-1]
        self.experiments = TopicSpec(f"test.experiments.{tag}", 1, "id", "test", consumed=True)
        self.learning = TopicSpec(f"test.learning.{tag}", 6, "task_type", "test", consumed=True)
        self.shards = TopicSpec(
            f"test.shards.{tag}", 6, "partition", "test", None, "compact", consumed=True
        )
        self.settings = OptimizerSettings(
            data_dir=tmp_path,
            partitioned_learning=True,
            checkpoint_name=f"optimizer-{tag}",
            checkpoint_interval_s=0.5,
            snapshot_interval_s=0.3,
            forward_group=f"forward-{tag}",
            owner_group=f"owners-{tag}",
            cost_topic=self.cost.name,
            error_topic=self.errors.name,
            experiments_topic=self.experiments.name,
            learning_topic=self.learning.name,
            shards_topic=self.shards.name,
            alerts_topic=self.alerts.name,
        )

    async def setup(self) -> None:
        internal = [self.experiments, self.learning]
        await ensure_topics(self.kafka, [*internal, self.shards, *map(dlq_spec, internal)])
        await super().setup()

    def worker(self) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """One optimizer worker (a process, in production)."""
        return self.optimizer()

    async def publish_calls(self, n: int, cost_usd: float = 0.01) -> None:
        """``n`` calls of agent ``bot`` over the task types, on :data:`DAY`, a second apart."""
        events = [
            llm_call(
                "bot",
                at=DAY + timedelta(seconds=self.sent + i),
                task_type=TASK_TYPES[(self.sent + i) % len(TASK_TYPES)],
                cost_usd=cost_usd,
            )
            for i in range(n)
        ]
        await send_acknowledged(self.producer, self.cost.name, events)
        self.sent += n


@pytest.fixture
async def lab(infra_env: Any, tmp_path: Any) -> AsyncIterator[PartitionedLab]:
    lab = PartitionedLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.producer.stop()


async def events_in_view(client: httpx.AsyncClient) -> int:
    return int((await client.get("/api/stats/summary")).json()["events"])


async def _counts(client: httpx.AsyncClient, events: int) -> bool:
    return await events_in_view(client) == events


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    resp = await client.get("/readyz")
    return resp.status_code, resp.json()["checks"]


async def test_a_new_replica_is_ready_only_once_its_view_holds_every_published_partition(
    lab: PartitionedLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab.worker() as client:
        await lab.publish_calls(48)
        await wait_until(lambda: _counts(client, 48), 90, "the view to count the 48 events")
        published = (await client.get("/api/partitions")).json()["viewed"]
    assert len(published) > 1  # the events were learned in several partitions

    start = ShardSnapshotReader.start

    async def start_paused(reader: ShardSnapshotReader) -> None:
        await start(reader)
        reader.consumer.pause(*reader.consumer.assignment())  # it reads nothing: not ready

    monkeypatch.setattr(ShardSnapshotReader, "start", start_paused)
    async with lab.worker() as client:
        status, checks = await readiness(client)
        assert status == 503
        assert {name for name, result in checks.items() if result != "ok"} == {"view"}
        assert checks["view"].startswith("down: RuntimeError: the view has not read")
        assert await events_in_view(client) == 0  # what a replica ready now would answer

        reader = client.app.state.learning.reader  # type: ignore[attr-defined]
        reader.consumer.resume(*reader.consumer.assignment())
        await wait_until(
            lambda: _status(readiness(client)), 60, "the replica to be ready once it has read"
        )
        assert await events_in_view(client) == 48
        viewed = (await client.get("/api/partitions")).json()["viewed"]
        assert set(published) <= set(viewed)


async def _status(answer: Any) -> bool:
    status, _ = await answer
    return bool(status == 200)


class AlertLog:
    """Every alert on the lab's alerts topic, read from its beginning as they arrive."""

    def __init__(self, lab: PartitionedLab) -> None:
        self.consumer = make_consumer(lab.kafka, group_id=None)
        self.topic = lab.alerts.name
        self.alerts: list[dict[str, Any]] = []

    async def start(self) -> None:
        await self.consumer.start()
        tp = TopicPartition(self.topic, 0)
        self.consumer.assign([tp])
        await self.consumer.seek_to_beginning(tp)

    async def ids(self) -> list[str]:
        """The ids of every budget alert raised so far, in the order raised."""
        batch = await self.consumer.getmany(timeout_ms=200)
        for records in batch.values():
            self.alerts.extend(json.loads(r.value) for r in records)
        return [a["alert_id"] for a in self.alerts if a["kind"] == "budget"]


@pytest.fixture
async def alert_log(lab: PartitionedLab) -> AsyncIterator[AlertLog]:
    log = AlertLog(lab)
    await log.start()
    yield log
    await log.consumer.stop()


async def test_the_next_owner_of_partition_0_does_not_raise_a_budget_alert_again_but_a_new_one(
    lab: PartitionedLab, alert_log: AlertLog
) -> None:
    period_start, _ = period_bounds("day", DAY.timestamp())
    at_80 = alert_id("bot-daily", period_start, "0.8", 1.0)
    at_100 = alert_id("bot-daily", period_start, "1", 1.0)

    async with lab.worker() as first:
        put = await first.put(
            "/api/budgets/bot-daily",
            json={"scope": "agent", "subject": "bot", "period": "day", "limit_usd": 1.0},
        )
        assert put.status_code == 200, put.text
        await lab.publish_calls(17, cost_usd=0.05)  # $0.85: 80 % reached, 100 % not
        await wait_until(
            lambda: _has(alert_log.ids(), at_80), 90, "the first worker to raise the 80 % alert"
        )
        assert (await first.get("/api/partitions")).json()["owned"] == list(range(6))

    async with lab.worker() as second:  # it owns partition 0 now, restored from its checkpoint
        await wait_until(
            lambda: _owns_partition_0(second), 90, "the second worker to own partition 0"
        )
        await lab.publish_calls(4, cost_usd=0.05)  # $1.05: 100 % reached
        await wait_until(
            lambda: _has(alert_log.ids(), at_100), 90, "the second worker to raise the 100 % alert"
        )
        # Each view raises what is due in order, the 80 % alert (still due) before the 100 %
        # one: had the second worker not known it was raised, it would be on the topic now.
        raised = await alert_log.ids()
        assert raised.count(at_80) == 1
        assert raised.count(at_100) == 1


async def _has(ids: Any, alert: str) -> bool:
    return alert in await ids


async def _owns_partition_0(client: httpx.AsyncClient) -> bool:
    return 0 in (await client.get("/api/partitions")).json()["owned"]
