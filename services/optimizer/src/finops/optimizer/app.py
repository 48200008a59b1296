"""Assembles the optimizer: intake, engine and API in one process. No I/O at import.

It runs no Faust app: its consumers are aiokafka consumers its lifespan starts. With one
worker (the default) the checkpointed event intake learns every task type; with
``partitioned_learning`` each worker forwards its share of the input re-keyed by task type,
learns the partitions it owns and answers from every partition's published state
(docs/optimizer.md, "Scaling out"). Either way the circuit-breaker reader runs beside.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from finops.common.auth import TokenVerifier
from finops.common.checkpoints import PostgresCheckpointStore
from finops.common.circuits import CircuitReader, CircuitTable
from finops.common.events import EventTopics
from finops.common.gc_pauses import freeze_startup_heap, gc_pauses_watched
from finops.common.health import postgres_check, redis_check
from finops.common.http import ReadinessCheck
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import end_process_if_failed, finish, with_shared_resources
from finops.common.log_position import ResumePlan, plan_resume
from finops.common.stream_service import create_stream_service_app
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.metrics import SPEND
from finops.optimizer.adapters.recommendation_log import RecommendationLog
from finops.optimizer.adapters.settings_ledger import PostgresSettingsLedger
from finops.optimizer.adapters.shard_snapshots import PartitionedLearning, ShardSnapshotReader
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.adapters.task_type_forward import TaskTypeForwarder
from finops.optimizer.api.routes import router
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.settings import OptimizerSettings


def create_app(
    settings: OptimizerSettings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The optimizer app; ``verifier`` replaces the token verifier built on startup."""
    settings = settings or OptimizerSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(settings)
        await producer.start()
        app.state.reclog = RecommendationLog(producer)
        await app.state.reclog.start()
        stop = asyncio.Event()
        learning = _partitioned if settings.partitioned_learning else _one_worker
        async with learning(app, settings, producer, stop):
            circuits = CircuitReader(
                make_consumer(settings, group_id=None), settings.circuits_topic, app.state.circuits
            )
            await circuits.start()
            breakers = asyncio.create_task(circuits.run(stop), name="optimizer-circuits")
            app.state.circuits_task = breakers
            end_process_if_failed(
                breakers, "the circuit-breaker reader", stop, enabled=settings.exit_on_loop_failure
            )
            try:
                with gc_pauses_watched("optimizer", freeze=False):  # frozen before the intake
                    yield
            finally:
                stop.set()
                await finish(breakers, timeout=10)
                await circuits.stop()
        await app.state.reclog.stop()
        await producer.stop()

    app = create_stream_service_app(
        settings,
        None,
        title="FinOps optimizer",
        description="Spend analytics, budgets and online model recommendations.",
        resources=with_shared_resources(
            resources, settings, postgres_pool_size=4, verifier=verifier
        ),
        readiness=lambda app: _readiness(app, settings),
    )
    app.state.circuits = CircuitTable()  # filled by the reader the lifespan starts
    app.include_router(router)
    return app


def _readiness(app: FastAPI, settings: OptimizerSettings) -> dict[str, ReadinessCheck]:
    checks: dict[str, ReadinessCheck] = {
        "postgres": lambda: postgres_check(app.state.db),
        "redis": lambda: redis_check(app.state.redis),
        "intake": lambda: _loop_check(app, "intake_task", "the event intake"),
        "circuits": lambda: _loop_check(app, "circuits_task", "the circuit-breaker reader"),
    }
    if settings.partitioned_learning:
        checks["view"] = lambda: _view_check(app)
    return checks


async def _view_check(app: FastAPI) -> None:
    """Partitioned learning: ready once the view holds every partition state published
    before this replica started (until then it would answer from nothing)."""
    learning = getattr(app.state, "learning", None)
    if learning is None:
        raise RuntimeError("partitioned learning has not started")
    reason = learning.reader.unready_reason()
    if reason is not None:
        raise RuntimeError(reason)


async def _loop_check(app: FastAPI, attribute: str, what: str) -> None:
    """This app's loop (``app.state.<attribute>``), not a task of the same name in the
    process: another instance's, in a test or the embedded stack, may be running."""
    task = getattr(app.state, attribute, None)
    if task is None or task.done():
        raise RuntimeError(f"{what} is not running")


@asynccontextmanager
async def _one_worker(
    app: FastAPI, settings: OptimizerSettings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> AsyncIterator[None]:
    """One worker learns every task type: the checkpointed event intake."""
    consumer = make_consumer(settings, group_id=settings.consumer_group, max_poll_records=2000)
    intake = EventIntake(
        new_engine(settings),
        consumer,
        producer,
        PostgresCheckpointStore(app.state.db, "optimizer_checkpoints"),
        name=settings.checkpoint_name,
        checkpoint_every_events=settings.checkpoint_every_events,
        checkpoint_interval_s=settings.checkpoint_interval_s,
        events=EventTopics(settings.cost_topic, settings.error_topic),
        alerts_topic=settings.alerts_topic,
        experiments_topic=settings.experiments_topic,
        ledger=PostgresSettingsLedger(app.state.db, settings.checkpoint_name),
    )
    await intake.restore()
    intake.resume_from(
        await plan_resume(settings, intake.offsets, intake.cluster_id, what="optimizer intake")
    )
    # The restored state is long-lived: keep it out of the cyclic GC's full scans, which
    # would otherwise stall requests for tens of milliseconds (p99 latency).
    if settings.freeze_startup_heap:
        freeze_startup_heap()
    await intake.start()
    async with _serving(app, settings, intake, stop, [consumer]):
        yield


async def _check_learning_partitions(
    settings: OptimizerSettings, producer: AIOKafkaProducer
) -> None:
    """Refuse to start unless the learning and shards topics have the partitions
    ``FINOPS_LEARNING_PARTITIONS`` counts: a worker forwards each task type to the partition
    that count gives it, so one counting otherwise splits task types between two partitions
    (learned twice, answered from one) while it looks ready."""
    for what, topic in (("learning", settings.learning_topic), ("shards", settings.shards_topic)):
        found = len(await producer.partitions_for(topic))
        if found != settings.learning_partitions:
            raise RuntimeError(
                f"FINOPS_LEARNING_PARTITIONS={settings.learning_partitions}, but the {what}"
                f" topic {topic} has {found} partitions: every optimizer worker must count the"
                " partitions the topic has (task types are mapped to partitions by that count)"
            )


@asynccontextmanager
async def _partitioned(
    app: FastAPI, settings: OptimizerSettings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> AsyncIterator[None]:
    """Learning partitioned by task type: forward, own some partitions, serve every one."""
    await _check_learning_partitions(settings, producer)
    forward_consumer = make_consumer(settings, group_id=settings.forward_group)
    owner_consumer = make_consumer(settings, group_id=settings.owner_group, max_poll_records=2000)
    reader_consumer = make_consumer(settings, group_id=None)

    async def resume(saved: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
        return await plan_resume(settings, saved, cluster_id, what="optimizer partitions")

    ledger = PostgresSettingsLedger(app.state.db, settings.checkpoint_name)

    learning = PartitionedLearning(
        TaskTypeForwarder(
            forward_consumer,
            producer,
            learning_topic=settings.learning_topic,
            partitions=settings.learning_partitions,
            experiments_topic=settings.experiments_topic,
            events=EventTopics(settings.cost_topic, settings.error_topic),
        ),
        EngineShards(
            owner_consumer,
            producer,
            PostgresCheckpointStore(app.state.db, "optimizer_checkpoints"),
            topic=settings.learning_topic,
            resume=resume,
            name=settings.checkpoint_name,
            new_engine=lambda: new_engine(settings),
            shards_topic=settings.shards_topic,
            alerts_topic=settings.alerts_topic,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            snapshot_interval_s=settings.snapshot_interval_s,
            ledger=ledger,
        ),
        ShardSnapshotReader(
            reader_consumer,
            settings.shards_topic,
            partitions=settings.learning_partitions,
            blank=lambda: new_engine(settings),
        ),
        producer,
        learning_topic=settings.learning_topic,
        partitions=settings.learning_partitions,
        alerts_topic=settings.alerts_topic,
        ledger=ledger,
    )
    await learning.reader.start()
    await learning.shards.start()
    await learning.forwarder.start(
        [settings.cost_topic, settings.error_topic, settings.experiments_topic]
    )
    app.state.learning = learning
    async with _serving(
        app, settings, learning, stop, [forward_consumer, owner_consumer, reader_consumer]
    ):
        yield


@asynccontextmanager
async def _serving(
    app: FastAPI,
    settings: OptimizerSettings,
    learning: EventIntake | PartitionedLearning,
    stop: asyncio.Event,
    consumers: list[AIOKafkaConsumer],
) -> AsyncIterator[None]:
    """Answer from ``learning`` and send it operator changes; run it until ``stop``, then
    stop its consumers."""
    app.state.intake = app.state.changes = learning
    SPEND.source = lambda: learning.engine
    runner = asyncio.create_task(learning.run(stop), name="optimizer-intake")
    app.state.intake_task = runner
    end_process_if_failed(runner, "the event intake", stop, enabled=settings.exit_on_loop_failure)
    try:
        yield
    finally:
        stop.set()
        await finish(runner, timeout=30)
        for consumer in consumers:
            await consumer.stop()


def new_engine(settings: OptimizerSettings) -> OptimizerEngine:
    return OptimizerEngine(settings.fleet_quality_target, settings.policy_seed)
