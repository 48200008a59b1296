"""Readiness tells the truth about the broker: declared topics, declared partitions."""

from __future__ import annotations

import uuid

import pytest

from finops.common.health import BrokerProbe
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import ALL_TOPICS, TopicSpec

pytestmark = pytest.mark.integration


def _settings(infra) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )


async def test_every_declared_topic_present_is_ready(infra):
    probe = BrokerProbe(_settings(infra), ALL_TOPICS)
    try:
        await probe.check()  # raises when any declared topic is missing or mis-partitioned
        assert probe.specs == tuple(ALL_TOPICS)
    finally:
        await probe.close()


async def test_a_missing_topic_is_not_ready(infra):
    missing = TopicSpec(f"test.missing.{uuid.uuid4().hex[:8]}", 3, "k", "never created")
    probe = BrokerProbe(_settings(infra), [missing])
    try:
        with pytest.raises(ConnectionError, match=f"topic {missing.name} does not exist"):
            await probe.check()
    finally:
        await probe.close()


async def test_a_topic_with_other_partitions_than_declared_is_not_ready(infra):
    name = f"test.partitions.{uuid.uuid4().hex[:8]}"
    await ensure_topics(_settings(infra), [TopicSpec(name, 4, "k", "as auto-creation makes it")])
    probe = BrokerProbe(_settings(infra), [TopicSpec(name, 3, "k", "as declared")])
    try:
        with pytest.raises(ConnectionError, match=f"{name} has 4 partitions, 3 declared"):
            await probe.check()
    finally:
        await probe.close()
