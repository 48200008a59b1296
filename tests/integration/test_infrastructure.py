"""The session's PostgreSQL, Redis and broker are real servers reached over TCP."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from finops.common.kafka import make_admin, make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST, ALL_TOPICS, TOPICS_BY_NAME

pytestmark = pytest.mark.integration


async def test_postgres_answers_over_tcp(infra):
    assert "@" in infra.database_url and ":" in infra.database_url.split("@")[1]
    conn = await asyncpg.connect(infra.database_url)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
        version = await conn.fetchval("SHOW server_version")
        assert int(version.split(".")[0]) >= 15
    finally:
        await conn.close()


async def test_redis_answers_over_tcp(infra):
    client = aioredis.from_url(infra.redis_url)
    key = f"test:{uuid.uuid4()}"
    try:
        await client.set(key, "v", ex=30)
        assert await client.get(key) == b"v"
        assert 0 < await client.ttl(key) <= 30
    finally:
        await client.aclose()


async def test_every_declared_topic_exists_with_its_partitions(infra):
    settings = CommonSettings(kafka_bootstrap=infra.kafka_bootstrap)
    admin = make_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in ALL_TOPICS])
    finally:
        await admin.close()
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == {t.name: t.partitions for t in ALL_TOPICS}
    assert TOPICS_BY_NAME[AGENT_COST.dlq].partitions == 1


async def test_acked_messages_come_back_from_earliest(infra):
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_enable_idempotence=not infra.local_broker,
    )
    producer = make_producer(settings)
    await producer.start()
    marker = uuid.uuid4().hex
    try:
        futures = [
            await producer.send(
                AGENT_COST.name, key=f"a{i % 5}".encode(), value=f"{marker}:{i}".encode()
            )
            for i in range(200)
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert {m.topic for m in metadata} == {AGENT_COST.name}
    assert {m.partition for m in metadata} <= set(range(AGENT_COST.partitions))

    consumer = make_consumer(settings, AGENT_COST.name, group_id=f"test-{marker}")
    await consumer.start()
    seen: set[str] = set()
    try:
        async with asyncio.timeout(30):
            while len(seen) < 200:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen.update(
                        r.value.decode() for r in records if r.value.decode().startswith(marker)
                    )
        await consumer.commit()
        committed = [
            await consumer.committed(TopicPartition(AGENT_COST.name, p))
            for p in range(AGENT_COST.partitions)
        ]
    finally:
        await consumer.stop()
    assert seen == {f"{marker}:{i}" for i in range(200)}
    assert sum(c or 0 for c in committed) >= 200
