"""The optimizer reads the healer's circuit breakers from their compacted topic: its next
answer leaves out the arm whose breaker opened, says so, and takes it back once closed."""

from __future__ import annotations

import time
import uuid

import pytest
from support import llm_call, wait_until
from test_optimizer_live import Lab

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec

pytestmark = pytest.mark.integration

MINI = "gpt-4o-mini|openai|default"


@pytest.fixture
async def lab(infra_env, tmp_path):
    lab = Lab(infra_env, tmp_path)
    circuits = TopicSpec(
        f"test.circuits.{uuid.uuid4().hex[:8]}", 3, "provider/model", "test",
        retention_ms=None, cleanup_policy="compact",
    )  # fmt: skip
    lab.settings.circuits_topic = circuits.name
    await lab.setup()
    await ensure_topics(lab.kafka, [circuits])
    yield lab
    await lab.producer.stop()


async def publish_breaker(lab: Lab, model: str, state: CircuitStatus) -> None:
    now = time.time()
    record = CircuitState("openai", model, state, 0.9, 20, 18, 60.0, now, now + 30, "t", now)
    await lab.producer.send_and_wait(
        lab.settings.circuits_topic, record.to_json(), key=record.key.encode()
    )


async def test_an_open_breaker_keeps_its_arm_out_of_the_next_answer(lab):
    async with lab.optimizer() as client:
        await lab.publish(
            [llm_call("bot", model=m, quality=0.9) for m in ("gpt-4o", "gpt-4o-mini")]
        )
        await lab.caught_up(client)

        async def answer() -> dict:
            got = await client.get("/api/recommendations", params={"task_type": "summarize"})
            assert got.status_code == 200, got.text
            return got.json()

        assert (await answer())["skipped"] == []
        await publish_breaker(lab, "gpt-4o-mini", CircuitStatus.OPEN)
        await wait_until(
            lambda: client.app.state.circuits.state_of("openai", "gpt-4o-mini") == "open",
            30,
            "the optimizer to read the open breaker",
        )
        for _ in range(20):
            rec = await answer()
            assert rec["model"] == "gpt-4o"
            assert [s["arm"] for s in rec["skipped"]] == [MINI]
            assert rec["skipped"][0]["breaker"] == "open"
            assert "circuit breaker skipped" in rec["reason"]

        await publish_breaker(lab, "gpt-4o-mini", CircuitStatus.CLOSED)
        await wait_until(
            lambda: client.app.state.circuits.state_of("openai", "gpt-4o-mini") == "closed",
            30,
            "the optimizer to read the closed breaker",
        )
        assert (await answer())["skipped"] == []
