"""The optimizer on a real broker and PostgreSQL: it learns, notices drift, survives restarts."""

from __future__ import annotations

import json
import random
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support import TokenFactory, llm_call, send_acknowledged, wait_until

from finops.common.auth import TokenVerifier
from finops.common.auth.blocklist import blocklist_redis
from finops.common.dead_letters import header_map
from finops.common.kafka import make_consumer, make_producer, read_topic
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec
from finops.optimizer.app import create_app
from finops.optimizer.settings import OptimizerSettings

pytestmark = pytest.mark.integration

TRUTH = {"gpt-4o": 0.90, "gpt-4o-mini": 0.88}
SCORE_NOISE = 0.1  # an evaluator's score scatters around the model's true quality


def score(rng: random.Random, true_quality: float) -> float:
    return min(1.0, max(0.0, rng.gauss(true_quality, SCORE_NOISE)))


class Lab:
    """Isolated topics, a producer playing the fleet, and optimizer instances to start."""

    def __init__(self, infra, tmp_path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.cost = TopicSpec(f"test.cost.{tag}", 3, "agent_id", "test", consumed=True)
        self.errors = TopicSpec(f"test.error.{tag}", 3, "agent_id", "test", consumed=True)
        self.alerts = TopicSpec(f"test.alerts.{tag}", 1, "subject", "test")
        self.kafka = CommonSettings(
            kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
        )
        self.settings = OptimizerSettings(
            data_dir=tmp_path,
            consumer_group=f"optimizer-{tag}",
            checkpoint_name=f"optimizer-{tag}",
            checkpoint_interval_s=0.5,
            cost_topic=self.cost.name,
            error_topic=self.errors.name,
            alerts_topic=self.alerts.name,
        )
        self.tokens = TokenFactory()
        self.token = self.tokens.token("operator-1", role="operator")
        self.sent = 0

    async def setup(self) -> None:
        specs = [self.cost, self.errors, self.alerts, dlq_spec(self.cost), dlq_spec(self.errors)]
        await ensure_topics(self.kafka, specs)
        self.producer = make_producer(self.kafka)
        await self.producer.start()

    @asynccontextmanager
    async def optimizer(self):
        app = create_app(
            self.settings,
            verifier=TokenVerifier(
                self.settings, blocklist_redis(self.settings.redis_url), self.tokens.keys
            ),
        )
        async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {self.token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://optimizer", headers=headers
            ) as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    async def publish(self, events: list[dict]) -> None:
        await send_acknowledged(self.producer, self.cost.name, events)
        self.sent += len(events)

    async def caught_up(self, client) -> None:
        intake = client.app.state.intake
        await wait_until(lambda: intake.events >= self.sent, 60, f"{self.sent} events applied")

    async def play(self, client, n: int, truth: dict[str, float], rng: random.Random) -> list[str]:
        """n rounds of: ask, call the recommended model, report the outcome."""
        picks = []
        for start in range(0, n, 25):
            events = []
            for _ in range(min(25, n - start)):
                rec = (
                    await client.get("/api/recommendations", params={"task_type": "summarize"})
                ).json()
                picks.append(rec["model"])
                quality = score(rng, truth[rec["model"]])
                events.append(
                    llm_call(
                        "bot",
                        model=rec["model"],
                        quality=quality,
                        decision={
                            "recommendation_id": rec["recommendation_id"],
                            "propensity": rec["propensity"],
                        },
                    )
                )
            await self.publish(events)
            await self.caught_up(client)
        return picks


@pytest.fixture
async def lab(infra_env, tmp_path):
    lab = Lab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.producer.stop()


async def alerts_on(lab: Lab) -> list[dict]:
    consumer = make_consumer(lab.kafka, lab.alerts.name, group_id=f"read-{uuid.uuid4().hex}")
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


async def test_cheap_arm_takes_over_then_drift_moves_it_back_with_an_alert(lab):
    rng = random.Random(7)
    async with lab.optimizer() as client:
        await lab.publish([llm_call("bot", model=m, quality=1.0) for m in TRUTH])
        await lab.caught_up(client)
        picks = await lab.play(client, 600, TRUTH, rng)
        assert picks[-100:].count("gpt-4o-mini") >= 80

        drifted = {"gpt-4o": 0.90, "gpt-4o-mini": 0.30}
        picks = await lab.play(client, 500, drifted, rng)
        moved_back = next(
            (i for i in range(0, len(picks) - 50) if picks[i : i + 50].count("gpt-4o") >= 40),
            None,
        )
        assert moved_back is not None and moved_back <= 400, picks
        tasks = (await client.get("/api/tasks")).json()
        assert tasks["tasks"]["summarize"]["arms"]["gpt-4o-mini|openai|default"]["drifts"] >= 1

    drift = [a for a in await alerts_on(lab) if a["kind"] == "drift"]
    assert drift and drift[0]["subject"] == "summarize/gpt-4o-mini|openai|default"
    assert drift[0]["source"] == "optimizer"


async def test_restart_keeps_learned_state_and_counts_nothing_twice(lab):
    rng = random.Random(11)
    async with lab.optimizer() as client:
        await lab.publish([llm_call("bot", model=m, quality=1.0) for m in TRUTH])
        await lab.caught_up(client)
        await lab.play(client, 200, TRUTH, rng)
        before = (await client.get("/api/stats/model")).json()["totals"]
        tasks_before = (await client.get("/api/tasks")).json()
        put = await client.put(
            "/api/budgets/bot-daily",
            json={"scope": "agent", "subject": "bot", "period": "day", "limit_usd": 50},
        )
        assert put.status_code == 200, put.text
    assert sum(row["calls"] for row in before) == lab.sent

    # a crash: events after the last checkpoint are applied again from their offsets
    async with lab.optimizer() as client:
        intake = client.app.state.intake
        assert intake.events == lab.sent
        after = (await client.get("/api/stats/model")).json()["totals"]
        assert after == before
        assert (await client.get("/api/tasks")).json()["policy"] == tasks_before["policy"]
        assert [
            b["budget"]["id"] for b in (await client.get("/api/budgets")).json()["budgets"]
        ] == ["bot-daily"]

        async def no_checkpoint() -> None:  # the process dies before it can save
            return None

        await lab.publish([llm_call("bot", model="gpt-4o", quality=1.0) for _ in range(30)])
        await lab.caught_up(client)
        intake.checkpoint = no_checkpoint

    async with lab.optimizer() as client:
        await lab.caught_up(client)
        totals = (await client.get("/api/stats/model")).json()["totals"]
        assert sum(row["calls"] for row in totals) == lab.sent
        # the same events published twice (a client retry) are counted once
        duplicate = llm_call("bot", model="gpt-4o", quality=1.0)
        await lab.publish([duplicate, duplicate])
        await wait_until(lambda: client.app.state.intake.events >= lab.sent - 1, 30, "applied")
        totals = (await client.get("/api/stats/model")).json()["totals"]
        assert sum(row["calls"] for row in totals) == lab.sent - 1


async def test_api_scopes_and_errors(lab):
    async with lab.optimizer() as client:
        agent = {"Authorization": f"Bearer {lab.tokens.token('bot')}"}
        assert (await client.get("/api/stats/summary", headers=agent)).status_code == 403
        missing = await client.get("/api/recommendations", params={"task_type": "nothing-yet"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_arms"
        bad = await client.get(
            "/api/recommendations", params={"task_type": "x", "input_tokens": "many"}
        )
        assert bad.status_code == 422
        added = await client.post(
            "/api/catalog", json={"model": "gpt-4.1-nano", "provider": "openai"}
        )
        assert added.status_code == 201 and added.json()["arm"] == "gpt-4.1-nano|openai|default"
        rec = await client.get(
            "/api/recommendations", params={"task_type": "new-task", "input_tokens": "800"}
        )
        assert rec.status_code == 200 and rec.json()["model"] == "gpt-4.1-nano"
        put = await client.put(
            "/api/objectives/summarize",
            json={"relative_quality_floor": 0.9, "latency_p95_ms": 2000},
        )
        assert put.json()["summarize"]["relative_quality_floor"] == 0.9
        assert (await client.put("/api/objectives/x", json={"quality_floor": 3})).status_code == 422
        assert (await client.delete("/api/budgets/none")).status_code == 404

        for i in range(30):  # 30 agents: only the top 10 get their own series
            await lab.publish([llm_call(f"agent-{i}", model="gpt-4o", quality=1.0)])
        await lab.caught_up(client)
        metrics = (await client.get("/metrics")).text
        agent_series = [
            ln for ln in metrics.splitlines() if ln.startswith('finops_calls{dimension="agent"')
        ]
        assert len(agent_series) == 11
        assert 'finops_calls{dimension="agent",key="__other__"} 20.0' in metrics


async def test_unreadable_checkpoint_rebuilds_the_state_from_the_log(lab):
    import asyncpg

    from finops.common.checkpoints import Checkpoint, PostgresCheckpointStore

    async with lab.optimizer() as client:
        await lab.publish([llm_call("bot", model="gpt-4o", quality=1.0) for _ in range(40)])
        await lab.caught_up(client)
    pool = await asyncpg.create_pool(lab.settings.database_url, min_size=1, max_size=1)
    try:
        await PostgresCheckpointStore(pool, "optimizer_checkpoints").save(
            lab.settings.checkpoint_name, Checkpoint({"version": 999}, {}, 0)
        )
    finally:
        await pool.close()
    async with lab.optimizer() as client:
        await lab.caught_up(client)
        totals = (await client.get("/api/stats/model")).json()["totals"]
        assert sum(row["calls"] for row in totals) == 40


async def test_a_deleted_catalog_arm_is_never_recommended_again(lab):
    nano = "gpt-4.1-nano|openai|default"

    async def named_arms(client, task_type: str, n: int) -> set[str]:
        """Every arm named (chosen or as an alternative) in n recommendations."""
        named: set[str] = set()
        for _ in range(n):
            resp = await client.get("/api/recommendations", params={"task_type": task_type})
            assert resp.status_code == 200, resp.text
            rec = resp.json()
            named |= {rec["arm"], *(a["arm"] for a in rec["alternatives"])}
        return named

    async with lab.optimizer() as client:
        await lab.publish([llm_call("bot", model=m, quality=1.0) for m in TRUTH])
        await lab.caught_up(client)
        added = await client.post(
            "/api/catalog", json={"model": "gpt-4.1-nano", "provider": "openai"}
        )
        assert added.status_code == 201
        assert nano in await named_arms(client, "summarize", 5)
        deleted = await client.delete(f"/api/catalog/{nano}")
        assert deleted.status_code == 204
        assert nano not in await named_arms(client, "summarize", 50)
        assert nano not in await named_arms(client, "a-new-task", 20)
        catalog = (await client.get("/api/catalog")).json()
        assert (catalog["arms"], catalog["withdrawn"]) == ([], [nano])
        again = await client.delete(f"/api/catalog/{nano}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    async with lab.optimizer() as client:  # the deletion is in the checkpoint
        assert nano not in await named_arms(client, "summarize", 20)


async def test_an_event_dated_9999_on_the_topic_breaks_no_stats_request(lab):
    far_future = llm_call("bot", model="gpt-4o", quality=1.0)
    far_future["time"] = "9999-12-31T12:00:00Z"
    async with lab.optimizer() as client:
        await lab.publish([llm_call("bot", model="gpt-4o", quality=1.0), far_future])
        await lab.publish([llm_call("bot", model="gpt-4o", quality=1.0)])
        await lab.caught_up(client)
        for window in ("minute", "hour", "day"):
            resp = await client.get("/api/stats/model", params={"window": window})
            assert resp.status_code == 200, resp.text
            assert sum(w["rows"][0]["calls"] for w in resp.json()["windows"]) == 2
        summary = (await client.get("/api/stats/summary")).json()
        assert (summary["events"], summary["out_of_range_for_windows"]) == (3, 1)
    async with lab.optimizer() as client:  # and after a restart from the checkpoint
        resp = await client.get("/api/stats/model", params={"window": "day"})
        assert resp.status_code == 200
        assert resp.json()["windows"][-1]["rows"][0]["calls"] == 2


async def dead_letters(lab: Lab, spec: TopicSpec, expected: int) -> list:
    """The records on ``spec``'s dead-letter topic, read until ``expected`` are there."""
    found: list = []
    async for record in read_topic(
        lab.kafka, spec.dlq, timeout_s=30, until=lambda: len(found) >= expected
    ):
        found.append(record)
    return found


async def test_a_call_on_the_error_topic_is_parked_and_counted_nowhere(lab):
    # an agent.llm_call written to agent.error.v1 is a bad record, not an LLM call
    poisoned = llm_call("bot", task_type="poison-t", model="gpt-4o")
    real = llm_call("bot", task_type="poison-t", model="gpt-4o")
    async with lab.optimizer() as client:
        intake = client.app.state.intake
        await send_acknowledged(lab.producer, lab.errors.name, [poisoned])
        await lab.publish([real])
        await wait_until(
            lambda: intake.stream.processed + intake.stream.dead_lettered >= 2,
            60,
            "both records read",
        )
        totals = (await client.get("/api/stats/task_type")).json()["totals"]
        assert {row["key"]: row["calls"] for row in totals} == {"poison-t": 1}
        assert (intake.events, intake.stream.dead_lettered) == (1, 1)
    [parked] = await dead_letters(lab, lab.errors, 1)
    headers = header_map(parked.headers)
    assert json.loads(parked.value)["id"] == poisoned["id"]
    assert (headers["x-service"], headers["x-origin-topic"]) == ("optimizer", lab.errors.name)
    assert headers["x-error-type"] == "WrongEventType"
    assert headers["x-error"] == (
        f"agent.llm_call event on {lab.errors.name}, which carries agent.error events only"
    )


async def test_an_unreadable_announcement_is_parked(lab):
    experiments = lab.settings.experiments_topic
    garbage = f"garbage-{uuid.uuid4().hex}".encode()
    async with lab.optimizer() as client:
        intake = client.app.state.intake
        await lab.producer.send_and_wait(experiments, garbage, key=b"e1")
        # counted once its dead letter is acknowledged
        await wait_until(lambda: intake.stream.dead_lettered >= 1, 60, "a record parked")
    parked = [r async for r in read_topic(lab.kafka, f"{experiments}.dlq") if r.value == garbage]
    [record] = parked
    headers = header_map(record.headers)
    assert (headers["x-service"], headers["x-origin-topic"]) == ("optimizer", experiments)
    assert headers["x-error-type"] == "JSONDecodeError"


async def test_the_checkpoint_keeps_no_records_taken_and_a_restart_counts_nothing_twice(lab):
    # the one-worker checkpoint held every record taken within the last 10,000 offsets of each
    # partition (up to 2.6 MB), though its intake never reads a record before the offsets it
    # saved again: a restart seeks to them, a rebalance to the offsets of the records applied
    first = [llm_call("bot", cost_usd=0.01) for _ in range(300)]
    async with lab.optimizer() as client:
        intake = client.app.state.intake
        await lab.publish(first)
        await lab.caught_up(client)
        await intake.checkpoint()
        saved = await intake.store.load(intake.name)
        assert saved is not None
        assert sum(o for p, o in saved.offsets.items() if p.startswith(lab.cost.name)) == 300
        assert saved.state_dict()["analytics"]["records_taken"]["partitions"] == {}
        assert saved.state_dict()["analytics"]["events"] == 300
        # the records stay remembered while it runs (a record read again there is redelivered)
        assert len(intake.engine.analytics.records_taken) == 300

        async def no_checkpoint() -> None:  # the process dies before it can save again
            return None

        intake._checkpoint_locked = no_checkpoint
        await lab.publish([llm_call("bot", cost_usd=0.01) for _ in range(40)])
        await lab.caught_up(client)

    # restarted: the 40 records after the checkpoint are read again and counted once, and
    # two events the agents send again (new records of events counted) are duplicates
    async with lab.optimizer() as client:
        await lab.caught_up(client)
        await lab.publish([first[0], first[299]])
        await lab.caught_up(client)
        summary = (await client.get("/api/stats/summary")).json()
        assert (summary["events"], summary["duplicates"], summary["redelivered"]) == (340, 2, 0)
        assert summary["fleet"]["spend_usd"] == pytest.approx(3.4)
