"""A consumer that stops leaves its group, on a broker that numbers generations from 0 too."""

from __future__ import annotations

import uuid

import pytest
from support import wait_until

from finops.common.kafka import make_admin, make_consumer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec

pytestmark = pytest.mark.integration


async def group_members(settings: CommonSettings, group: str) -> list[str]:
    admin = make_admin(settings)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (description,) = response.to_object()["groups"]
    return [member["member_id"] for member in description["members"]]


async def test_a_member_stopped_at_generation_zero_is_gone_from_its_group(infra):
    """Without the leave, tansu keeps a stopped first-generation member for the whole session
    timeout, and a restarted service's join waits for it."""
    if not infra.local_broker:
        pytest.skip("Apache Kafka numbers generations from 1, where aiokafka leaves anyway")
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_enable_idempotence=False,
        kafka_group_generations_from_zero=True,
    )
    spec = TopicSpec(f"test.leave.{uuid.uuid4().hex[:8]}", 1, "k", "test")
    await ensure_topics(settings, [spec])
    group = f"leave-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(settings, spec.name, group_id=group)
    await consumer.start()
    try:
        await wait_until(lambda: consumer.assignment(), 60, "the group's assignment")
        assert consumer._coordinator.generation == 0  # the quirk this setting is for
        member = consumer._coordinator.member_id
        assert await group_members(settings, group) == [member]
    finally:
        await consumer.stop()
    assert await group_members(settings, group) == []
