"""End to end on real infrastructure: the experiments service decides, the optimizer adopts
the winner without an operator, and a variant that broke a guardrail is never promoted."""

from __future__ import annotations

import random
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from support import wait_until

from finops.common.auth import TokenVerifier
from finops.common.auth.blocklist import blocklist_redis
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.optimizer.app import create_app
from finops.optimizer.settings import OptimizerSettings

pytestmark = pytest.mark.integration


@asynccontextmanager
async def optimizer(lab, tmp_path):
    errors = TopicSpec(f"test.error.{lab.tag}", 3, "agent_id", "test", consumed=True)
    alerts = TopicSpec(f"test.alerts.{lab.tag}", 1, "subject", "test")
    await ensure_topics(lab.kafka, [errors, alerts, dlq_spec(errors)])
    settings = OptimizerSettings(
        data_dir=tmp_path / "optimizer",
        consumer_group=f"optimizer-{lab.tag}",
        checkpoint_name=f"optimizer-{lab.tag}",
        cost_topic=lab.cost.name,
        error_topic=errors.name,
        alerts_topic=alerts.name,
        experiments_topic=lab.decisions.name,
    )
    app = create_app(
        settings,
        verifier=TokenVerifier(settings, blocklist_redis(settings.redis_url), lab.tokens.keys),
    )
    async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://optimizer") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def test_a_cheaper_winner_is_promoted_and_a_guardrail_breaker_never_is(lab, tmp_path) -> None:
    rng = random.Random(5)
    cheap_task = lab.task_type
    async with lab.service() as experiments, optimizer(lab, tmp_path) as opt:
        await lab.announce_task_type(experiments)
        winner_id = await lab.create_and_start(experiments, min_samples=50)
        lab.task_type = poor_task = f"classify-{uuid.uuid4().hex[:6]}"
        await lab.announce_task_type(experiments)
        breaker_id = await lab.create_and_start(experiments, min_samples=50)
        lab.task_type = cheap_task
        await lab.publish(
            lab.calls(
                winner_id, 1500, rng, cost={"A": 0.01, "B": 0.007}, quality={"A": 0.85, "B": 0.85}
            )
        )
        lab.task_type = poor_task
        await lab.publish(
            lab.calls(
                breaker_id, 1500, rng, cost={"A": 0.01, "B": 0.005}, quality={"A": 0.85, "B": 0.6}
            )
        )
        engine = lambda: opt.app.state.intake.engine  # noqa: E731 - restores replace it
        await wait_until(lambda: cheap_task in engine().promoted, 90, "the winner promoted")
        headers = {"Authorization": f"Bearer {lab.tokens.token('bot', 'agent')}"}
        for seed in range(5):
            rec = (
                await opt.get(
                    "/api/recommendations",
                    params={"task_type": cheap_task, "seed": seed},
                    headers=headers,
                )
            ).json()
            assert rec["model"] == "gpt-4o-mini" and rec["propensity"] == 1.0
            assert winner_id in rec["reason"] and "winner of experiment" in rec["reason"]
        breaker = (
            await experiments.get(f"/api/experiments/{breaker_id}", headers=lab.operator)
        ).json()
        assert breaker["status"] == "stopped" and breaker["decision"]["winner"] is None
        # two starts and two decisions on the topic: wait until the optimizer read them all
        await wait_until(
            lambda: opt.app.state.intake.announcements_read >= 4, 90, "every announcement read"
        )
        outcomes = {
            outcome: REGISTRY.get_sample_value(
                "finops_optimizer_events_total", {"topic": lab.decisions.name, "outcome": outcome}
            )
            for outcome in ("promoted", "no_winner", "not_a_decision", "invalid")
        }
        assert outcomes == {"promoted": 1, "no_winner": 1, "not_a_decision": 2, "invalid": None}
        assert poor_task not in engine().promoted
        rec = (
            await opt.get("/api/recommendations", params={"task_type": poor_task}, headers=headers)
        ).json()
        assert breaker_id not in rec["reason"]
