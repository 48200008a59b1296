"""Isolated topics for the circuit breakers, a producer playing the fleet, and readers
(``from circuit_lab import CircuitLab``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from support import llm_call, send_acknowledged

from finops.common.checkpoints import PostgresCheckpointStore
from finops.common.events import error_event
from finops.common.kafka import make_consumer, make_producer, read_topic
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.healer.adapters.circuits import CircuitsView
from finops.healer.settings import HealerSettings


def agent_error(
    agent: str, provider: str, model: str, status: int, message: str, **error: Any
) -> dict[str, Any]:
    return error_event(
        {
            "agent_id": agent,
            "task_type": "summarize",
            "provider": provider,
            "model": model,
            "error": {"status_code": status, "message": message, **error},
        }
    )


class CircuitLab:
    def __init__(self, infra: Any, tmp_path: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.cost = TopicSpec(f"test.cost.{tag}", 3, "agent_id", "test", consumed=True)
        self.errors = TopicSpec(f"test.error.{tag}", 3, "agent_id", "test", consumed=True)
        self.outcomes = TopicSpec(f"test.outcomes.{tag}", 3, "provider/model", "t", consumed=True)
        self.circuits = TopicSpec(
            f"test.circuits.{tag}", 3, "provider/model", "t", retention_ms=None,
            cleanup_policy="compact",
        )  # fmt: skip
        self.alerts = TopicSpec(f"test.alerts.{tag}", 1, "subject", "test")
        self.kafka = CommonSettings(
            kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
        )
        self.infra = infra
        self.tmp_path = tmp_path

    def healer_settings(self, name: str = "a", **overrides: Any) -> HealerSettings:
        with pytest.MonkeyPatch.context() as env:
            for key, value in self.infra.env().items():
                env.setenv(key, value)
            options: dict[str, Any] = {
                "data_dir": self.tmp_path / name,
                "cost_topic": self.cost.name,
                "error_topic": self.errors.name,
                "outcomes_topic": self.outcomes.name,
                "circuits_topic": self.circuits.name,
                "alerts_topic": self.alerts.name,
                "breaker_min_calls": 10,
                "breaker_cooldown_s": 2.0,
                "breaker_probes_to_close": 2,
                "breaker_publish_interval_s": 0.2,
                # a state a deposed owner published late is overwritten within a second
                "breaker_republish_interval_s": 1.0,
                # this lab's own consumer groups (Faust's too) and checkpoint rows
                "faust_app_id": f"finops-healer-{self.tag}",
                "breaker_group": f"outcomes-{self.tag}",
                "breaker_owner_group": f"breakers-{self.tag}",
                "breaker_checkpoint_name": f"breakers-{self.tag}",
                **overrides,
            }
            return HealerSettings(**options)

    async def setup(self) -> None:
        specs = [self.cost, self.errors, self.outcomes, self.circuits, self.alerts]
        await ensure_topics(self.kafka, [*specs, dlq_spec(self.outcomes)])
        self.producer = make_producer(self.kafka)
        await self.producer.start()
        self.pool = await asyncpg.create_pool(self.infra.database_url, min_size=1, max_size=4)
        #: the healer's checkpoint table, as the service has it
        self.store = PostgresCheckpointStore(self.pool, "healer_checkpoints")

    async def close(self) -> None:
        await self.producer.stop()
        await self.pool.close()

    async def send(self, topic: str, events: list[dict[str, Any]]) -> None:
        """Send ``events`` keyed by agent; returns once the broker acknowledged each."""
        await send_acknowledged(self.producer, topic, events)

    async def fail(self, provider: str, model: str, n: int, status: int, message: str) -> None:
        events = [agent_error(f"bot-{i}", provider, model, status, message) for i in range(n)]
        await self.send(self.errors.name, events)

    async def succeed(self, provider: str, model: str, n: int) -> None:
        calls = [llm_call(f"bot-{i}", provider=provider, model=model) for i in range(n)]
        await self.send(self.cost.name, calls)

    def reader(self) -> CircuitsView:
        """A second view of the circuits topic, as another instance has it."""
        return CircuitsView(make_consumer(self.kafka, group_id=None), self.circuits.name)

    async def alerts_read(self) -> list[dict[str, Any]]:
        return [
            json.loads(record.value)
            async for record in read_topic(self.kafka, self.alerts.name, idle_s=1.5)
        ]
