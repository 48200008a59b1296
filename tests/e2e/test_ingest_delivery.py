"""Delivery through the SDK: 100,000 events arrive exactly; a broker outage loses nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
import redis.asyncio as aioredis
from support import TokenFactory, ids_on_topic, llm_call, serve, wait_until

from finops.cli.stack import Component, Stack, StackSettings, free_port
from finops.client import AsyncFinOpsClient
from finops.common.auth import TokenVerifier
from finops.common.settings import LOCAL_BROKER_ENV, CommonSettings
from finops.common.topics import AGENT_COST
from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings

pytestmark = pytest.mark.e2e
N_EVENTS = int(os.environ.get("FINOPS_TEST_SDK_EVENTS", "100000"))


def ingest_app(tokens: TokenFactory, settings: IngestSettings):
    app = create_app(settings)
    app.state.verifier = TokenVerifier(settings, aioredis.from_url(settings.redis_url), tokens.keys)
    return app


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


async def test_100k_events_through_the_sdk_arrive_exactly_once_each(infra_env, tmp_path):
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
    kafka = CommonSettings(kafka_bootstrap=infra_env.kafka_bootstrap)
    on_topic = await ids_on_topic(kafka, AGENT_COST.name, expect=set(sent), timeout=180)
    wanted = set(sent)
    mine = {i for i in on_topic if i in wanted}
    assert len(mine) == N_EVENTS
    assert mine == wanted


@pytest.fixture
def s3_stack(tmp_path: Path, stack_dir: Path):
    """A broker that keeps its data in S3 (a local moto server), so it survives a restart."""
    moto_port = free_port()
    moto = Component(
        "moto",
        "infra",
        moto_port,
        log_file=tmp_path / "moto.log",
        command=lambda: [
            shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server"),
            "-H",
            "127.0.0.1",
            "-p",
            str(moto_port),
        ],
    )
    moto.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    stack = None
    try:
        deadline = time.monotonic() + 30
        while not moto.ready():
            assert time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            region_name="us-east-1",
        ).create_bucket(Bucket="tansu")
        settings = StackSettings(
            data_dir=stack_dir,
            postgres_port=free_port(),
            redis_port=free_port(),
            kafka_port=free_port(),
            postgres_fsync=False,
            kafka_s3_endpoint=endpoint,
        )
        stack = Stack(settings, infra_only=True)
        stack.start()
        yield stack
    finally:
        if stack:
            stack.stop()
        moto.stop()


async def test_broker_outage_sdk_keeps_and_retries_nothing_lost(s3_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("FINOPS_REDIS_URL", s3_stack.redis_url)
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", s3_stack.kafka_bootstrap)
    for key, value in LOCAL_BROKER_ENV.items():
        monkeypatch.setenv(key, value)
    tokens = TokenFactory()
    agent = "outage-" + uuid.uuid4().hex[:6]
    token = tokens.token(username=agent)
    settings = IngestSettings(data_dir=tmp_path, publish_timeout_s=2.0)
    broker = s3_stack.components["kafka"]
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
    kafka = CommonSettings(kafka_bootstrap=s3_stack.kafka_bootstrap)
    on_topic = set(await ids_on_topic(kafka, AGENT_COST.name, expect=set(sent), timeout=120))
    assert set(sent) <= on_topic
