"""A lab for the experiments on real infrastructure: isolated topics, a producer playing the
fleet, experiments service instances to start and restart."""

from __future__ import annotations

import json
import random
import uuid
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from support import TokenFactory, llm_call, send_acknowledged, wait_until, wait_until_count

from finops.common.auth import TokenVerifier
from finops.common.auth.blocklist import blocklist_redis
from finops.common.kafka import make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.experiments.app import create_app
from finops.experiments.settings import ExperimentsSettings


class ExperimentsLab:
    def __init__(self, infra: Any, tmp_path: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.task_type = f"summarize-{tag}"
        self.cost = TopicSpec(f"test.cost.{tag}", 3, "agent_id", "test", consumed=True)
        self.errors = TopicSpec(f"test.errors.{tag}", 3, "agent_id", "test", consumed=True)
        self.decisions = TopicSpec(f"test.experiments.{tag}", 3, "experiment_id", "test")
        self.events = TopicSpec(
            f"test.experiment-events.{tag}", 3, "experiment_id", "test", consumed=True
        )
        self.kafka = CommonSettings(
            kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
        )
        self.settings = ExperimentsSettings(
            data_dir=tmp_path,
            # the lab's own Faust group: an instance of an earlier test still in the shared
            # default group (a stop cut short) would hold every later start in a rebalance
            faust_app_id=f"finops-experiments-{tag}",
            consumer_group=f"experiments-{tag}",
            analysis_group=f"experiments-analysis-{tag}",
            checkpoint_name=f"experiments-{tag}",
            checkpoint_interval_s=0.5,
            refresh_interval_s=0.3,
            intake_healthy_after_s=1.0,
            cost_topic=self.cost.name,
            error_topic=self.errors.name,
            experiments_topic=self.decisions.name,
            events_topic=self.events.name,
        )
        self.tokens = TokenFactory()
        self.operator = {"Authorization": f"Bearer {self.tokens.token('ops-ann', 'operator')}"}
        self.agent = {"Authorization": f"Bearer {self.tokens.token('bot', 'agent')}"}
        self.sent = 0

    async def setup(self) -> None:
        await ensure_topics(
            self.kafka,
            [
                self.cost,
                self.errors,
                self.decisions,
                self.events,
                dlq_spec(self.cost),
                dlq_spec(self.errors),
                dlq_spec(self.events),
                dlq_spec(self.decisions),
            ],
        )
        self.producer = make_producer(self.kafka)
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    @asynccontextmanager
    async def service(self):
        app = create_app(
            self.settings,
            verifier=TokenVerifier(
                self.settings, blocklist_redis(self.settings.redis_url), self.tokens.keys
            ),
        )
        async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://experiments"
            ) as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    async def publish(self, events: list[dict]) -> None:
        await send_acknowledged(self.producer, self.cost.name, events)
        self.sent += len(events)

    async def publish_errors(self, events: list[dict]) -> None:
        await send_acknowledged(self.producer, self.errors.name, events)

    async def announce_task_type(self, client) -> None:
        """One untagged call of the lab's task type, until the service knows it."""
        await self.publish([llm_call("bot", task_type=self.task_type, cost_usd=0.01)])
        repo = client.app.state.experiments
        await wait_until(
            lambda: repo.task_type_known(self.task_type), 60, "the task type to be known"
        )

    async def create_and_start(self, client, **overrides: Any) -> str:
        eid = await self.create(client, **overrides)
        started = await client.post(f"/api/experiments/{eid}/start", headers=self.operator)
        assert started.status_code == 200, started.text
        return eid

    async def create(self, client, **overrides: Any) -> str:
        """A draft experiment of the lab's task type (A: gpt-4o, B: gpt-4o-mini)."""
        body = {
            "name": f"exp-{uuid.uuid4().hex[:8]}",
            "task_type": self.task_type,
            "variants": [
                {"name": "A", "model": "gpt-4o", "provider": "openai"},
                {"name": "B", "model": "gpt-4o-mini", "provider": "openai"},
            ],
            **overrides,
        }
        created = await client.post("/api/experiments", json=body, headers=self.operator)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def calls(
        self,
        eid: str,
        n: int,
        rng: random.Random,
        *,
        cost: dict[str, float],
        quality: dict[str, float],
        start: int = 0,
    ) -> list[dict]:
        """n calls of units start..start+n, each tagged with the variant its unit would get
        (a fixed 50/50 split by unit parity keeps the counts even)."""
        events = []
        for i in range(start, start + n):
            variant = "A" if i % 2 == 0 else "B"
            events.append(
                llm_call(
                    f"bot-{i % 7}",
                    task_type=self.task_type,
                    model="gpt-4o" if variant == "A" else "gpt-4o-mini",
                    cost_usd=round(cost[variant] * rng.lognormvariate(0, 0.3), 8),
                    quality=min(1.0, max(0.0, rng.gauss(quality[variant], 0.05))),
                    success=rng.random() < 0.95,
                    experiment={"id": eid, "variant": variant},
                )
            )
        return events

    async def results(self, client, eid: str) -> dict:
        response = await client.get(f"/api/experiments/{eid}/results", headers=self.operator)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def counted(self, client, eid: str, n: int, stall_s: float = 60) -> dict:
        """The results once n events are counted; fails when the count stalls for stall_s."""
        latest: dict = {}

        async def count() -> int:
            latest.update(await self.results(client, eid))
            return sum(v["n"] for v in latest["variants"])

        await wait_until_count(count, n, stall_s, f"{n} events counted")
        return latest

    async def announcements(self) -> list[dict]:
        consumer = make_consumer(
            self.kafka, self.decisions.name, group_id=f"read-{uuid.uuid4().hex}"
        )
        await consumer.start()
        out: list[dict] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1500)
                if not batch:
                    return out
                for records in batch.values():
                    out.extend(json.loads(r.value) for r in records)
        finally:
            await consumer.stop()
