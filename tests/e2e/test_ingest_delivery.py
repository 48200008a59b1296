"""Delivery through the SDK: 100,000 events arrive exactly; a broker outage loses nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter

import httpx
import pytest
import redis.asyncio as aioredis
from support import TokenFactory, ids_on_topic, llm_call, serve, wait_until

from finops.cli.stack.local_stack import Stack
from finops.cli.stack.ports import free_port
from finops.client import AsyncFinOpsClient
from finops.common.auth import TokenVerifier
from finops.common.settings import LOCAL_BROKER_ENV, CommonSettings
from finops.common.topics import AGENT_COST
from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings

pytestmark = pytest.mark.e2e
N_EVENTS = int(os.environ.get("FINOPS_TEST_SDK_EVENTS", "100000"))


def ingest_app(tokens: TokenFactory, settings: IngestSettings):
    verifier = TokenVerifier(settings, aioredis.from_url(settings.redis_url), tokens.keys)
    return create_app(settings, verifier=verifier)


async def record(client: AsyncFinOpsClient, n: int, i0: int = 0) -> list[str]:
    return [
        await client.record_call(
            task_type=f"task-{i % 7}",
            provider="openai",
            model="gpt-4o-mini",
            usage={"input_tokens": 100 + i % 50, "output_tokens": 20},
            latency_ms=300 + i % 100,
            quality=0.8,
        )
        for i in range(i0, i0 + n)
    ]


def use_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the settings classes at ``stack``'s Redis and broker."""
    monkeypatch.setenv("FINOPS_REDIS_URL", stack.redis_url)
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", stack.kafka_bootstrap)
    for key, value in LOCAL_BROKER_ENV.items():
        monkeypatch.setenv(key, value)


async def test_100k_events_through_the_sdk_arrive_exactly_once_each(
    disk_stack, tmp_path, monkeypatch
):
    # A stack of its own, not the session's: 100,000 more events on the session's
    # agent.cost.v1 made every later reader of that topic on this worker (finops topics,
    # simulate's lost-events count, the services' intakes) read them all again.
    use_stack(disk_stack, monkeypatch)
    tokens = TokenFactory()
    agent = "fleet-" + uuid.uuid4().hex[:6]
    settings = IngestSettings(data_dir=tmp_path)
    port = free_port()
    async with serve(ingest_app(tokens, settings), port) as url:
        client = AsyncFinOpsClient(
            ingest_url=url, agent_id=agent, token=tokens.token(username=agent), batch_size=500
        )
        sent = await record(client, N_EVENTS)
        await client.close(timeout=300)
    assert client.stats.delivered == N_EVENTS and client.stats.rejected == 0
    kafka = CommonSettings(kafka_bootstrap=disk_stack.kafka_bootstrap)
    # Read to quiet, not until every id was seen: a duplicate may come after the last new id.
    on_topic = Counter(await ids_on_topic(kafka, AGENT_COST.name, idle_s=3, timeout=300))
    copies = {event_id: on_topic[event_id] for event_id in sent}
    lost = [event_id for event_id, n in copies.items() if n == 0]
    duplicated = {event_id: n for event_id, n in copies.items() if n > 1}
    assert len(set(sent)) == N_EVENTS
    assert lost == [], f"{len(lost)} of {N_EVENTS} events never reached the topic"
    assert duplicated == {}, f"{len(duplicated)} events reached the topic more than once"


async def test_broker_outage_sdk_keeps_and_retries_nothing_lost(disk_stack, tmp_path, monkeypatch):
    use_stack(disk_stack, monkeypatch)
    tokens = TokenFactory()
    agent = "outage-" + uuid.uuid4().hex[:6]
    token = tokens.token(username=agent)
    settings = IngestSettings(data_dir=tmp_path, publish_timeout_s=2.0)
    broker = disk_stack.components["broker"]
    async with serve(ingest_app(tokens, settings), free_port()) as url:
        client = AsyncFinOpsClient(
            ingest_url=url,
            agent_id=agent,
            token=token,
            batch_size=200,
            linger_s=0.05,
            max_backoff_s=1.0,
        )
        sent = await record(client, 1500)
        await client.flush(timeout=60)

        broker.stop()
        assert not broker.running()
        sent += await record(client, 1500, 1500)
        async with httpx.AsyncClient() as http:
            direct = await http.post(
                f"{url}/api/events",
                json=[llm_call(agent)],
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        assert direct.status_code == 503
        assert direct.headers["retry-after"]
        await wait_until(lambda: client.stats.retries >= 2, 60, "the SDK to retry")
        assert client.pending > 0

        broker.start()
        await wait_until(lambda: asyncio.to_thread(broker.ready), 60, "the broker to come back")
        await client.close(timeout=120)
    assert client.stats.delivered == 3000
    kafka = CommonSettings(kafka_bootstrap=disk_stack.kafka_bootstrap)
    on_topic = set(await ids_on_topic(kafka, AGENT_COST.name, expect=set(sent), timeout=120))
    assert set(sent) <= on_topic
