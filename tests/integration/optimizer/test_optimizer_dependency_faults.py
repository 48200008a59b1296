"""The optimizer with PostgreSQL or Redis frozen or down: writes and token checks answer a fast
503 ``dependency_unavailable``, and the event intake outlives a database outage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fault_injection import FaultyLink
from support import TokenFactory, llm_call, send_acknowledged, wait_until

from finops.common.auth import TokenVerifier
from finops.common.datastores import redis_client
from finops.common.kafka import make_producer
from finops.common.settings import LOCAL_BROKER_ENV, CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.optimizer.app import create_app
from finops.optimizer.settings import OptimizerSettings

pytestmark = pytest.mark.integration

HANG_GUARD_S = 5.0  # not a latency assertion: only a request stuck on a dead server fails
BUDGET = {"scope": "team", "subject": "search", "period": "day", "limit_usd": 5.0}


@dataclass
class Optimizer:
    app: FastAPI
    client: httpx.AsyncClient
    settings: OptimizerSettings
    kafka: CommonSettings
    cost_topic: str
    links: dict[str, FaultyLink]

    @asynccontextmanager
    async def fault(self, dependency: str, fault: str) -> AsyncIterator[None]:
        link = self.links[dependency]
        if fault == "frozen":
            link.freeze()
        else:
            await link.cut()
        try:
            yield
        finally:
            await link.restore()


@pytest.fixture(scope="module")
async def optimizer(infra, tmp_path_factory) -> AsyncIterator[Optimizer]:
    tag = uuid.uuid4().hex[:8]
    cost = TopicSpec(f"test.cost.{tag}", 1, "agent_id", "test", consumed=True)
    errors = TopicSpec(f"test.error.{tag}", 1, "agent_id", "test", consumed=True)
    alerts = TopicSpec(f"test.alerts.{tag}", 1, "subject", "test")
    local = LOCAL_BROKER_ENV if infra.local_broker else {}
    broker = {key.removeprefix("FINOPS_").lower(): value for key, value in local.items()}
    kafka = CommonSettings(kafka_bootstrap=infra.kafka_bootstrap, **broker)
    await ensure_topics(kafka, [cost, errors, alerts, dlq_spec(cost), dlq_spec(errors)])
    links = {
        "postgres": await FaultyLink(infra.database_url).start(),
        "redis": await FaultyLink(infra.redis_url).start(),
    }
    settings = OptimizerSettings(
        **broker,
        data_dir=tmp_path_factory.mktemp("optimizer-faults"),
        database_url=links["postgres"].url,
        redis_url=links["redis"].url,
        kafka_bootstrap=infra.kafka_bootstrap,
        consumer_group=f"optimizer-{tag}",
        checkpoint_name=f"optimizer-{tag}",
        checkpoint_interval_s=0.3,
        cost_topic=cost.name,
        error_topic=errors.name,
        alerts_topic=alerts.name,
    )
    tokens = TokenFactory()
    verifier = TokenVerifier(settings, redis_client(settings), tokens.keys)
    app = create_app(settings, verifier=verifier)
    headers = {"Authorization": f"Bearer {tokens.token('operator-1', role='operator')}"}
    try:
        async with (
            LifespanManager(app, startup_timeout=90, shutdown_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://optimizer",
                headers=headers,
            ) as client,
        ):
            yield Optimizer(app, client, settings, kafka, cost.name, links)
    finally:
        for link in links.values():
            await link.close()


def assert_dependency_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("fault", ["frozen", "down"])
async def test_a_write_without_postgres_gives_503_not_a_hang(optimizer, fault: str) -> None:
    async with optimizer.fault("postgres", fault):
        async with asyncio.timeout(HANG_GUARD_S):
            response = await optimizer.client.put("/api/budgets/b1", json=BUDGET)
    assert_dependency_unavailable(response)


async def test_reads_keep_working_while_postgres_is_down(optimizer) -> None:
    async with optimizer.fault("postgres", "down"):
        async with asyncio.timeout(HANG_GUARD_S):
            response = await optimizer.client.get("/api/stats/summary")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("fault", ["frozen", "down"])
async def test_a_token_is_refused_while_the_blocklist_cannot_be_read(optimizer, fault: str) -> None:
    """Fail closed: without Redis nobody can tell whether the token was revoked."""
    assert (await optimizer.client.get("/api/stats/summary")).status_code == 200
    async with optimizer.fault("redis", fault):
        async with asyncio.timeout(HANG_GUARD_S):
            response = await optimizer.client.get("/api/stats/summary")
    assert_dependency_unavailable(response)


async def test_the_intake_outlives_a_postgres_outage_and_checkpoints_after_it(optimizer) -> None:
    intake = optimizer.app.state.intake
    producer = make_producer(optimizer.kafka)
    await producer.start()
    try:
        async with optimizer.fault("postgres", "down"):
            target = intake.events + 20
            events = [llm_call("bot") for _ in range(20)]
            await send_acknowledged(producer, optimizer.cost_topic, events)
            await wait_until(lambda: intake.events >= target, 60, "events applied during outage")
            ready = await optimizer.client.get("/readyz")
            assert ready.json()["checks"]["intake"] == "ok"
            assert ready.json()["checks"]["postgres"].startswith("down")
    finally:
        await producer.stop()

    database = await asyncpg.connect(optimizer.settings.database_url)
    try:

        async def checkpoint_covers_the_outage() -> bool:
            saved = await database.fetchval(
                "SELECT events FROM optimizer_checkpoints WHERE name = $1",
                optimizer.settings.checkpoint_name,
            )
            return saved is not None and saved >= target

        await wait_until(checkpoint_covers_the_outage, 30, "a checkpoint covering the outage")
    finally:
        await database.close()
