"""Each service assembles, connects to the real infrastructure and exposes its ops endpoints."""

from __future__ import annotations

import importlib
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager

pytestmark = pytest.mark.integration

SERVICES = ["auth", "ingest", "optimizer", "healer", "experiments"]


@pytest.mark.parametrize("service", SERVICES)
async def test_service_is_alive_ready_and_scrapeable(service, infra_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path))
    # a Faust group of its own (healer, experiments), as every test's instances have
    monkeypatch.setenv("FINOPS_FAUST_APP_ID", f"{service}-{uuid.uuid4().hex[:8]}")
    module = importlib.import_module(f"finops.{service}.app")
    app = module.create_app()
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            health = await client.get("/healthz")
            assert health.json() == {"status": "ok", "service": service}
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"
            assert set(ready.json()["checks"].values()) == {"ok"}
            assert health.headers["x-request-id"]
            missing = await client.get("/no-such-route", headers={"x-request-id": "abc123"})
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
            assert missing.headers["x-request-id"] == "abc123"
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert (
                f'finops_http_requests_total{{method="GET",route="/healthz",service="{service}",status="200"}}'
                in metrics.text
            )


async def test_readiness_names_the_dependency_that_is_down(infra_env, monkeypatch):
    from finops.cli.stack.ports import free_port

    monkeypatch.setenv("FINOPS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    from finops.auth.app import create_app

    app = create_app()
    async with LifespanManager(app, startup_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("down:")


async def test_a_poison_message_reaches_the_dlq_from_a_faust_agent(
    infra_env, tmp_path, monkeypatch
):
    from finops.common.dead_letters import header_map, instance_name
    from finops.common.kafka import make_producer, read_topic
    from finops.common.settings import CommonSettings
    from finops.common.topics import AGENT_ERROR

    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINOPS_FAUST_APP_ID", f"healer-{uuid.uuid4().hex[:8]}")
    kafka = CommonSettings(
        kafka_bootstrap=infra_env.kafka_bootstrap,
        kafka_enable_idempotence=not infra_env.local_broker,
    )
    poison = f"not an event {uuid.uuid4()}".encode()
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(AGENT_ERROR.name, poison, key=b"poison")
    finally:
        await producer.stop()

    from finops.healer.app import create_app

    app = create_app()
    found = None
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        for _ in range(60):
            async for record in read_topic(kafka, AGENT_ERROR.dlq, idle_s=0.5):
                if record.value == poison:
                    found = record
            if found:
                break
    assert found is not None, "the poison message never reached the DLQ"
    headers = header_map(found.headers)
    assert headers["x-origin-topic"] == AGENT_ERROR.name
    assert headers["x-error-type"] == "ValidationError"
    # parked by the healer, at once: a second try would not decode it either
    assert (headers["x-service"], headers["x-attempts"]) == ("healer", "1")
    assert headers["x-instance"] == instance_name()  # the process that parked it
    assert found.key == b"poison"
