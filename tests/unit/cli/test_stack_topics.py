"""`finops up` on a broker of one's own that refuses the stack's topics: one line, not a
traceback (nothing is started here; the topic administration is a stand-in)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.stack.local_stack import Stack, StackError, StackSettings
from finops.common import topic_admin
from finops.common.settings import CommonSettings

REFUSALS = [
    topic_admin.TopicNotCreated("the Kafka broker did not create topic agent.cost.v1: X"),
    topic_admin.KafkaAccessRefused("Kafka SASL authentication failed at kafka-0:9093"),
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_broker_refusing_the_topics_is_one_line_stack_error(
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


@pytest.mark.parametrize("refusal", REFUSALS)
def test_finops_up_on_a_broker_refusing_the_topics_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    async def refuse(settings: CommonSettings) -> list[str]:
        raise refusal

    def start(stack: Stack, _should_stop: object) -> None:  # the infrastructure is up: topics next
        stack._create_topics()

    monkeypatch.setattr(topic_admin, "ensure_topics", refuse)
    monkeypatch.setattr(Stack, "start", start)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # `up` would keep Ctrl-C
    env = {
        "FINOPS_DATA_DIR": str(tmp_path),
        "FINOPS_KAFKA_BOOTSTRAP": "kafka-0:9093",
        "NO_COLOR": "1",
    }

    result = CliRunner().invoke(app, ["up", "--infra-only"], env=env)

    line = f"{refusal.code}: {refusal}"  # type: ignore[attr-defined]
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {line}\n"
    state = json.loads((tmp_path / "stack.json").read_text())
    assert (state["status"], state["error"]) == ("failed", line)
