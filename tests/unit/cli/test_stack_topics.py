"""`finops up` on a broker of one's own that refuses the stack's topics: one line, not a
traceback (nothing is started here; the topic administration is a stand-in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops.cli.stack import Stack, StackError, StackSettings
from finops.common import topic_admin
from finops.common.settings import CommonSettings


@pytest.mark.parametrize(
    "refusal",
    [
        topic_admin.TopicNotCreated("the Kafka broker did not create topic agent.cost.v1: X"),
        topic_admin.KafkaAccessRefused("Kafka SASL authentication failed at kafka-0:9093"),
    ],
)
def test_a_broker_refusing_the_topics_stops_finops_up_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    asked: list[str] = []

    async def refuse(settings: CommonSettings) -> list[str]:
        asked.append(settings.kafka_bootstrap)
        raise refusal

    monkeypatch.setattr(topic_admin, "ensure_topics", refuse)
    stack = Stack(StackSettings(data_dir=tmp_path, kafka_bootstrap="kafka-0:9093"))
    with pytest.raises(StackError) as stopped:
        stack._create_topics()
    assert asked == ["kafka-0:9093"]
    assert str(stopped.value) == f"{refusal.code}: {refusal}"  # type: ignore[attr-defined]
    assert "\n" not in str(stopped.value)
