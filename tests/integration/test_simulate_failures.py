"""`finops simulate` without a stack to run against: one line saying what to start; its
count of lost events, and its reading of the drift alerts raised during the run."""

from __future__ import annotations

import json
import uuid

import pytest
from support import healthz_server
from typer.testing import CliRunner

from finops.cli.main import app
from finops.cli.simulation.faults import QualityDrift
from finops.cli.simulation_driver.drift_watch import DriftWatch
from finops.cli.simulation_driver.platform import SERVICES, lost_events
from finops.cli.stack.ports import free_port
from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import AGENT_COST, AGENT_ERROR, ALERTS
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.drift_alerts import drift_alert
from finops.optimizer.domain.policy.learning import DriftSignal, drift_event

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


def _drift_alert(drift: QualityDrift, metric: str, seen: int) -> bytes:
    """A drift alert of ``drift``'s model on its task type, as the optimizer writes it."""
    arm = ArmSpec(drift.model, "openai").arm_id
    event = drift_event(drift.task_type, arm, DriftSignal(metric, -1, 0.9, 0.5), seen)
    return json.dumps(drift_alert(event, f"event-{seen}", "note")).encode()


async def test_the_drift_alerts_counted_are_those_written_after_the_run_began(infra_env):
    settings = CommonSettings(service_name="test")
    await ensure_topics(settings, [ALERTS])
    tag = uuid.uuid4().hex[:8]  # the topic may hold other tests' alerts: this run's own names
    drift = QualityDrift(f"model-{tag}", f"task-{tag}", start=0.5, drop=0.3)
    producer = make_producer(settings)
    await producer.start()
    try:
        # an earlier run's: it noticed the drift
        await producer.send_and_wait(ALERTS.name, _drift_alert(drift, "quality", 1))
        warnings: list[str] = []
        watch = DriftWatch((drift,), warnings.append)
        await watch.start()
        assert watch.mark is not None
        watch.round_starts(0.0)
        assert (await watch.findings()).drifts[0].noticed is False

        await producer.send_and_wait(ALERTS.name, _drift_alert(drift, "cost", 2))
        await producer.send_and_wait(ALERTS.name, b"not an alert")
        await producer.send_and_wait(ALERTS.name, _drift_alert(drift, "quality", 3))
    finally:
        await producer.stop()
    found = await watch.findings()
    # written after the only round began: the broker's timestamp places it at the run's end
    assert (found.drifts[0].noticed, found.drifts[0].noticed_at) == (True, 1.0)
    mine = [(o.subject, o.what) for o in found.others or () if tag in o.subject]
    assert mine == [(f"task-{tag}/model-{tag}|openai|default", "cost")]
    assert warnings == []
