"""Readiness checks for the infrastructure a service depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka.client import AIOKafkaClient

from finops.common.kafka import security_config
from finops.common.settings import CommonSettings
from finops.common.topics import ALL_TOPICS, TopicSpec


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


async def kafka_check(client: Any, specs: Iterable[TopicSpec] = ALL_TOPICS) -> None:
    """Ask the broker for cluster metadata through a started aiokafka client; every declared
    topic must exist with its declared partitions.

    A broker that came back without its data (or auto-created a topic with its own partition
    count) answers TCP and metadata alike, yet would take events into the wrong partitions:
    only the topic check tells the truth.
    """
    metadata = await client.fetch_all_metadata()
    if not metadata.brokers():
        raise ConnectionError("broker returned no brokers in its metadata")
    for spec in specs:
        partitions = metadata.partitions_for_topic(spec.name)
        if partitions is None:
            raise ConnectionError(f"topic {spec.name} does not exist on the broker")
        if len(partitions) != spec.partitions:
            raise ConnectionError(
                f"topic {spec.name} has {len(partitions)} partitions, {spec.partitions} declared"
            )


class BrokerProbe:
    """A long-lived metadata client for readiness checks (one connection, not one per probe)."""

    def __init__(self, settings: CommonSettings, specs: Iterable[TopicSpec] = ALL_TOPICS) -> None:
        self.settings = settings
        self.specs = tuple(specs)
        self._client: AIOKafkaClient | None = None

    async def check(self) -> None:
        if self._client is None:
            client = AIOKafkaClient(
                bootstrap_servers=self.settings.kafka_bootstrap,
                request_timeout_ms=self.settings.kafka_request_timeout_ms,
                client_id=f"finops-{self.settings.service_name}-readiness",
                **security_config(self.settings),
            )
            await client.bootstrap()
            self._client = client
        await kafka_check(self._client, self.specs)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
