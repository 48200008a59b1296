"""Saved offsets that no longer point into the broker's log are found and dropped."""

from __future__ import annotations

import logging
import uuid

import pytest

from finops.common.kafka import make_producer
from finops.common.log_position import broker_cluster_id, plan_resume
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic_with_ten_records(infra) -> tuple[CommonSettings, str]:
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    spec = TopicSpec(f"test.resume.{uuid.uuid4().hex[:8]}", 2, "k", "test", consumed=True)
    await ensure_topics(settings, [spec])
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(spec.name, f"v{i}".encode(), partition=0)
    finally:
        await producer.stop()
    return settings, spec.name


async def test_offsets_inside_the_log_are_kept(topic_with_ten_records):
    settings, topic = topic_with_ten_records
    cluster = await broker_cluster_id(settings)
    saved = {f"{topic}:0": 10, f"{topic}:1": 0}
    plan = await plan_resume(settings, saved, cluster, what="test")
    assert plan.offsets == saved
    assert plan.reset == {}
    assert plan.cluster_id == cluster


async def test_an_offset_past_the_end_is_dropped_with_a_warning(topic_with_ten_records, caplog):
    settings, topic = topic_with_ten_records
    cluster = await broker_cluster_id(settings)
    saved = {f"{topic}:0": 404, f"{topic}:1": 3, f"{topic}:7": 5}
    with caplog.at_level(logging.WARNING, logger="finops.common.log_position"):
        plan = await plan_resume(settings, saved, cluster, what="test consumer")
    assert plan.offsets == {}
    assert set(plan.reset) == set(saved)
    assert "past the end" in plan.reset[f"{topic}:0"]
    assert "past the end" in plan.reset[f"{topic}:1"]
    assert "no longer exists" in plan.reset[f"{topic}:7"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "test consumer" in warned and f"{topic}:0" in warned


async def test_a_new_cluster_id_drops_every_saved_offset(topic_with_ten_records):
    settings, topic = topic_with_ten_records
    saved = {f"{topic}:0": 5}
    plan = await plan_resume(settings, saved, "a-cluster-that-is-gone", what="test")
    assert plan.offsets == {}
    assert "cluster id changed" in plan.reset[f"{topic}:0"]
