"""Readiness checks for the infrastructure a service depends on."""

from __future__ import annotations

import asyncio
from typing import Any


async def tcp_check(address: str) -> None:
    """Open and close a TCP connection to ``host:port`` (the first of a comma-separated list)."""
    host, _, port = address.split(",")[0].strip().rpartition(":")
    _, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
    writer.close()
    await writer.wait_closed()


async def postgres_check(pool: Any) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def redis_check(client: Any) -> None:
    if not await client.ping():
        raise ConnectionError("redis did not answer PING")


async def kafka_check(producer: Any) -> None:
    """Ask the broker for cluster metadata through an already started aiokafka producer."""
    metadata = await producer.client.fetch_all_metadata()
    if not metadata.brokers():
        raise ConnectionError("broker returned no brokers in its metadata")
