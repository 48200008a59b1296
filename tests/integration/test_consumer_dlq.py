"""At-least-once consumption: commit after processing, poison records to the DLQ."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from asgi_lifespan import LifespanManager
from support import wait_until

from finops.common import dead_letters as dead_letters_module
from finops.common import lifespan
from finops.common.consumer import AtLeastOnceConsumer
from finops.common.dead_letters import DLQ_KEPT_BYTES, faust_handle, header_map
from finops.common.kafka import make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.stream_service import create_stream_service_app, faust_running
from finops.common.stream_settings import StreamSettings
from finops.common.streams import make_faust_app
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec, dlq_spec

pytestmark = pytest.mark.integration


async def test_poison_records_go_to_the_dlq_and_the_rest_is_committed(infra):
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    spec = TopicSpec(f"test.dlq.{uuid.uuid4().hex[:8]}", 2, "k", "test", consumed=True)
    await ensure_topics(settings, [spec, dlq_spec(spec)])
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(spec.name, f"v{i}".encode(), key=f"k{i % 3}".encode())

        attempts: dict[str, int] = {}
        handled: list[str] = []

        async def handler(record) -> None:
            value = record.value.decode()
            attempts[value] = attempts.get(value, 0) + 1
            if value in ("v7", "v13"):
                raise ValueError(f"cannot handle {value}")
            handled.append(value)

        group = f"g-{uuid.uuid4().hex[:8]}"
        consumer = make_consumer(settings, group_id=group)
        worker = AtLeastOnceConsumer(
            consumer, producer, handler, service="test", max_attempts=3, retry_backoff_s=0.01
        )
        await worker.start_subscribed([spec.name])
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(30):
            while worker.processed + worker.dead_lettered < 20:
                await asyncio.sleep(0.05)
        stop.set()
        await task
        committed = [
            await consumer.committed(TopicPartition(spec.name, p)) for p in range(spec.partitions)
        ]
        await consumer.stop()
    finally:
        await producer.stop()

    assert sorted(handled) == sorted(f"v{i}" for i in range(20) if i not in (7, 13))
    assert attempts["v7"] == 3 and attempts["v13"] == 3
    assert sum(c or 0 for c in committed) == 20

    dead = await dead_letters(settings, spec, 2)
    by_value = {r.value.decode(): header_map(r.headers) for r in dead}
    assert set(by_value) == {"v7", "v13"}
    headers = by_value["v7"]
    assert headers["x-origin-topic"] == spec.name
    assert int(headers["x-origin-offset"]) >= 0
    assert headers["x-origin-partition"] in ("0", "1")
    assert headers["x-error-type"] == "ValueError"
    assert headers["x-error"] == "cannot handle v7"
    assert headers["x-attempts"] == "3"


async def test_a_record_too_large_to_park_whole_is_parked_cut_and_the_reader_goes_on(infra):
    """A 2 MB record another producer wrote (the broker took it) is more than the service's
    producer sends: parked whole, the send failed and the reader stopped on it, restarted
    and stopped again. It is parked with the head of its value and its original size, and
    the record after it is handled."""
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    spec = TopicSpec(f"test.dlq.{uuid.uuid4().hex[:8]}", 1, "k", "test", consumed=True)
    await ensure_topics(settings, [spec, dlq_spec(spec)])
    huge = b"not an event " + b"x" * 2_000_000
    writer = make_producer(settings, max_request_size=4_000_000)
    await writer.start()
    try:
        await writer.send_and_wait(spec.name, huge, key=b"agent-7", headers=[("h", b"v")])
        await writer.send_and_wait(spec.name, b"fine", key=b"agent-7")
    finally:
        await writer.stop()

    handled: list[bytes] = []

    async def handler(record) -> None:
        if record.value != b"fine":
            raise ValueError("does not decode")
        handled.append(record.value)

    producer = make_producer(settings)  # the services' own: at most 1 MiB a request
    await producer.start()
    consumer = make_consumer(settings, group_id=f"g-{uuid.uuid4().hex[:8]}")
    worker = AtLeastOnceConsumer(consumer, producer, handler, service="test", max_attempts=1)
    try:
        await worker.start_subscribed([spec.name])
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(60):
            while worker.processed + worker.dead_lettered < 2 and not task.done():
                await asyncio.sleep(0.05)
        stop.set()
        await task  # raised MessageSizeTooLargeError before the fix
        await consumer.stop()
    finally:
        await producer.stop()
    assert handled == [b"fine"] and worker.dead_lettered == 1

    [parked] = await dead_letters(settings, spec, 1)
    assert parked.key == b"agent-7"
    assert parked.value == huge[:DLQ_KEPT_BYTES]
    headers = header_map(parked.headers)
    assert headers["h"] == "v"
    assert headers["x-truncated-value-bytes"] == str(len(huge))
    assert headers["x-origin-topic"] == spec.name
    assert headers["x-origin-offset"] == "0"
    assert headers["x-error-type"] == "ValueError"
    assert "x-truncated-key-bytes" not in headers and "x-dropped-headers" not in headers


async def test_a_faust_agent_whose_dead_letter_the_broker_refused_sends_it_again(
    infra, tmp_path, monkeypatch
):
    """Faust acks an event even when its agent raises: a dead letter the broker did not take
    (here twice) crashed the agent and the record was passed, parked nowhere. It is sent
    again until the broker takes it, and the agent goes on to the next record."""
    for name, value in infra.env().items():
        monkeypatch.setenv(name, value)
    settings = StreamSettings(data_dir=tmp_path, faust_app_id=f"test-dlq-{uuid.uuid4().hex[:8]}")
    spec = TopicSpec(f"test.dlq.{uuid.uuid4().hex[:8]}", 1, "k", "test", consumed=True)
    await ensure_topics(settings, [spec, dlq_spec(spec)])
    (tmp_path / "faust").mkdir()
    app = make_faust_app(settings)
    handled: list[bytes] = []
    outcomes: list[bool] = []
    _agent(app, spec, handled, outcomes)
    refusals = []

    async with faust_running(app):
        send = app.producer.send_and_wait

        async def refused_twice(topic, *args, **kwargs):
            if topic == spec.dlq and len(refusals) < 2:
                refusals.append(topic)
                raise KafkaTimeoutError("the broker did not acknowledge")
            return await send(topic, *args, **kwargs)

        monkeypatch.setattr(app.producer, "send_and_wait", refused_twice)
        await _write(settings, spec, [b"bad", b"good"])
        await wait_until(lambda: len(outcomes) == 2, 60, "both records handled")

    assert outcomes == [False, True] and handled == [b"good"] and len(refusals) == 2
    [parked] = await dead_letters(settings, spec, 1)
    assert parked.value == b"bad"
    headers = header_map(parked.headers)
    assert headers["x-origin-topic"] == spec.name and headers["x-error-type"] == "ValueError"


def _agent(app: Any, spec: TopicSpec, handled: list[bytes], outcomes: list[bool]) -> None:
    """A Faust agent on ``spec`` that handles each record but ``b"bad"`` (parked)."""

    async def handler(value: bytes) -> None:
        if value == b"bad":
            raise ValueError("does not decode")
        handled.append(value)

    async def consume(stream) -> None:
        async for event in stream.events():
            outcomes.append(await faust_handle(app, event, handler, service="test", max_attempts=1))

    app.agent(app.topic(spec.name, value_serializer="raw"), name="test-dlq-agent")(consume)


def _refusing_the_dlq(app: Any, spec: TopicSpec, monkeypatch, error: Exception) -> list[str]:
    """Make ``app``'s producer refuse every send to ``spec``'s DLQ with ``error``."""
    send = app.producer.send_and_wait
    refusals: list[str] = []

    async def refused(topic, *args, **kwargs):
        if topic == spec.dlq:
            refusals.append(topic)
            raise error
        return await send(topic, *args, **kwargs)

    monkeypatch.setattr(app.producer, "send_and_wait", refused)
    return refusals


async def _write(settings: CommonSettings, spec: TopicSpec, values: list[bytes]) -> None:
    writer = make_producer(settings)
    await writer.start()
    try:
        for value in values:
            await writer.send_and_wait(spec.name, value, key=b"k")
    finally:
        await writer.stop()


async def _committed(settings: CommonSettings, group: str, spec: TopicSpec) -> int | None:
    """The offset ``group`` committed on ``spec``'s partition 0 (None: none)."""
    reader = make_consumer(settings, group_id=group)
    await reader.start()
    try:
        return await reader.committed(TopicPartition(spec.name, 0))
    finally:
        await reader.stop()


async def _next_run_parks_it(settings: StreamSettings, spec: TopicSpec) -> None:
    """A new app on the group, the DLQ open again: reads the record left uncommitted again
    (and the one after it), parks it once, and commits both."""
    app = make_faust_app(settings)
    handled: list[bytes] = []
    outcomes: list[bool] = []
    _agent(app, spec, handled, outcomes)
    async with faust_running(app):
        await wait_until(lambda: len(outcomes) == 2, 60, "the records left read again")
    assert outcomes == [False, True] and handled == [b"later"]
    [parked] = await dead_letters(settings, spec, 1)
    assert parked.value == b"bad"
    assert header_map(parked.headers)["x-origin-offset"] == "1"
    assert await _committed(settings, settings.faust_app_id, spec) == 3


async def test_a_faust_agent_whose_dead_letter_the_broker_refuses_for_good_leaves_the_record(
    infra, tmp_path, monkeypatch, caplog
):
    """An ACL on the DLQ topic: the agent raised, Faust acked the record anyway and its
    offset was committed, the record parked nowhere. It is left uncommitted (and so is the
    next one), the app crashes (/readyz fails, the service ends its process), and the next
    run reads it again and parks it."""
    for name, value in infra.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FINOPS_EXIT_ON_LOOP_FAILURE", "true")
    settings = StreamSettings(data_dir=tmp_path, faust_app_id=f"test-dlq-{uuid.uuid4().hex[:8]}")
    spec = TopicSpec(f"test.dlq.{uuid.uuid4().hex[:8]}", 1, "k", "test", consumed=True)
    await ensure_topics(settings, [spec, dlq_spec(spec)])
    (tmp_path / "faust").mkdir()
    ended: list[str] = []
    monkeypatch.setattr(lifespan, "_terminate_self", lambda: ended.append("SIGTERM"))
    app = make_faust_app(settings)
    handled: list[bytes] = []
    outcomes: list[bool] = []
    _agent(app, spec, handled, outcomes)
    service = create_stream_service_app(settings, app, title="test", description="test")

    async with LifespanManager(service, startup_timeout=60, shutdown_timeout=30):
        refusals = _refusing_the_dlq(app, spec, monkeypatch, TopicAuthorizationFailedError())
        await _write(settings, spec, [b"fine", b"bad", b"later"])
        await wait_until(
            lambda: ended or len(outcomes) > 1, 60, "the service ending its process (or going on)"
        )
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            ready = await client.get("/readyz")
    assert ended == ["SIGTERM"]
    assert ready.status_code == 503
    assert "TopicAuthorizationFailedError" in ready.json()["checks"]["streams"]
    assert outcomes == [True] and handled == [b"fine"] and refusals == [spec.dlq]
    [left] = [r for r in caplog.records if r.getMessage().startswith("record neither handled nor")]
    assert (left.topic, left.partition, left.offset) == (spec.name, 0, 1)  # type: ignore[attr-defined]
    # "bad" (offset 1) is the next the group reads: before the fix, 2 or 3
    assert await _committed(settings, settings.faust_app_id, spec) == 1

    await _next_run_parks_it(settings, spec)


async def test_a_faust_agent_stopped_while_the_broker_refuses_its_dead_letter_leaves_the_record(
    infra, tmp_path, monkeypatch
):
    """A stop while the dead letter is sent again (the broker does not take it for now): the
    agent raised, Faust acked the record and the stop committed it, parked nowhere. It is
    left uncommitted (the next run reads it again and parks it: as the test above shows)."""
    for name, value in infra.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dead_letters_module, "FAUST_DLQ_RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(dead_letters_module, "FAUST_DLQ_RETRY_MAX_S", 0.05)
    settings = StreamSettings(data_dir=tmp_path, faust_app_id=f"test-dlq-{uuid.uuid4().hex[:8]}")
    spec = TopicSpec(f"test.dlq.{uuid.uuid4().hex[:8]}", 1, "k", "test", consumed=True)
    await ensure_topics(settings, [spec, dlq_spec(spec)])
    (tmp_path / "faust").mkdir()
    app = make_faust_app(settings)
    handled: list[bytes] = []
    outcomes: list[bool] = []
    _agent(app, spec, handled, outcomes)

    async with faust_running(app):
        refusals = _refusing_the_dlq(app, spec, monkeypatch, KafkaTimeoutError("no ack"))
        await _write(settings, spec, [b"fine", b"bad", b"later"])
        await wait_until(lambda: len(refusals) >= 2, 60, "the dead letter sent again")
    assert outcomes == [True] and handled == [b"fine"] and not app.crashed
    assert await _committed(settings, settings.faust_app_id, spec) == 1


async def dead_letters(settings: CommonSettings, spec: TopicSpec, count: int) -> list[Any]:
    """The first ``count`` records of ``spec``'s DLQ (partition 0), read from its start."""
    dlq = make_consumer(settings, group_id=None)
    await dlq.start()
    try:
        dlq.assign([TopicPartition(spec.dlq, 0)])
        await dlq.seek_to_beginning(TopicPartition(spec.dlq, 0))
        dead: list[Any] = []
        async with asyncio.timeout(20):
            while len(dead) < count:
                for records in (await dlq.getmany(timeout_ms=500)).values():
                    dead.extend(records)
    finally:
        await dlq.stop()
    return dead
