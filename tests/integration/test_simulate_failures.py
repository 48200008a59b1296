"""`finops simulate` without a stack to run against: one line saying what to start; and its
count of lost events."""

from __future__ import annotations

import json
import uuid

import pytest
from support import healthz_server
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.simulator.platform import SERVICES, lost_events
from finops.cli.stack.ports import free_port
from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import AGENT_COST, AGENT_ERROR

pytestmark = pytest.mark.integration

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}


def simulate(env: dict[str, str | None]):
    return CliRunner().invoke(app, ["simulate", "--calls", "100"], env={**PLAIN, **env})


def test_without_postgresql_it_names_postgresql():
    port = free_port()
    with healthz_server() as running:  # the services answer: PostgreSQL is what is missing
        services = {f"FINOPS_{name.upper()}_URL": running for name in SERVICES}
        result = simulate(
            {"FINOPS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/finops", **services}
        )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach PostgreSQL at 127.0.0.1:{port} — check that it runs and that "
        "FINOPS_DATABASE_URL is right\n"
    )


def test_without_the_auth_service_it_names_the_auth_service(infra_env):
    auth = f"http://127.0.0.1:{free_port()}"
    result = simulate({"FINOPS_AUTH_URL": auth})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach the auth service at {auth} — check that it runs and that "
        "FINOPS_AUTH_URL is right\n"
    )


async def test_lost_events_counts_the_acknowledged_ids_on_neither_topic(infra_env):
    settings = CommonSettings(service_name="test")
    await ensure_topics(settings, [AGENT_COST, AGENT_ERROR])
    on_cost, on_error, never_sent = (str(uuid.uuid4()) for _ in range(3))
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(AGENT_COST.name, json.dumps({"id": on_cost}).encode())
        await producer.send_and_wait(AGENT_ERROR.name, json.dumps({"id": on_error}).encode())
    finally:
        await producer.stop()
    assert await lost_events({on_cost, on_error}, quiet_s=(1.0,)) == 0
    assert await lost_events({on_cost, on_error, never_sent}, quiet_s=(1.0, 1.0)) == 1
