"""Assembles the experiments: definitions (PostgreSQL), streaming analysis, HTTP API and Faust
app in one process. No I/O at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import Histogram

from finops.common.auth import TokenVerifier
from finops.common.health import postgres_check, redis_check
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import with_shared_resources
from finops.common.log_position import ResumePlan, plan_resume
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.experiments.adapters.checkpoints import PostgresCheckpointStore
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.adapters.repository import Experiment, ExperimentRepository
from finops.experiments.adapters.stream import AnalysisIntake
from finops.experiments.agents import register_agents
from finops.experiments.api.routes import router
from finops.experiments.settings import ExperimentsSettings


def create_app(
    settings: ExperimentsSettings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The experiments app; ``verifier`` replaces the token verifier built on startup."""
    settings = settings or ExperimentsSettings()
    faust_app = make_faust_app(settings, "finops-experiments")
    register_agents(faust_app, settings.experiments_topic)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        repo = ExperimentRepository(app.state.db)
        app.state.experiments = repo
        producer = make_producer(settings)
        await producer.start()
        intake = await open_intake(settings, app.state.db, producer, repo)
        consumer = intake.consumer
        assert intake.forwarder is not None
        app.state.intake = intake

        async def announce(experiment: Experiment, kind: str) -> None:
            await intake.announce(
                {
                    "kind": kind,
                    "experiment_id": experiment.id,
                    "name": experiment.definition.name,
                    "task_type": experiment.definition.task_type,
                    "status": experiment.status,
                    "at": datetime.now(UTC).isoformat(),
                }
            )

        app.state.announce = announce
        stop = asyncio.Event()
        runner = asyncio.create_task(intake.run(stop), name="experiments-intake")
        if settings.freeze_startup_heap:
            freeze_startup_heap()
        gc_timer = time_gc_pauses()
        try:
            yield
        finally:
            gc.callbacks.remove(gc_timer)
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(runner, timeout=30)
            await consumer.stop()
            await intake.forwarder.consumer.stop()
            await producer.stop()

    app = create_stream_service_app(
        settings,
        faust_app,
        title="FinOps experiments",
        resources=with_shared_resources(
            resources, settings, postgres_pool_size=5, verifier=verifier
        ),
        readiness=lambda app: {
            "postgres": lambda: postgres_check(app.state.db),
            "redis": lambda: redis_check(app.state.redis),
            "intake": lambda: _intake_check(),
        },
        description="Automated cost A/B tests that stay valid under continuous monitoring.",
    )
    app.include_router(router)
    return app


async def open_intake(
    settings: ExperimentsSettings,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    repo: ExperimentRepository,
) -> AnalysisIntake:
    """Both stages of the analysis, subscribed and their consumers started.

    The caller runs ``intake.run(stop)`` and stops ``intake.consumer`` and
    ``intake.forwarder.consumer`` (the benchmark builds one this way too, to measure the
    analysis alone).
    """
    partitions = len(await producer.partitions_for(settings.events_topic))
    forwarder = TaggedForwarder(
        make_consumer(settings, settings.cost_topic, group_id=settings.consumer_group),
        producer,
        repo,
        events_topic=settings.events_topic,
        partitions=partitions,
    )

    async def resume(saved: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
        return await plan_resume(settings, saved, cluster_id, what="experiments analysis")

    intake = AnalysisIntake(
        make_consumer(settings, group_id=settings.analysis_group, max_poll_records=2000),
        producer,
        PostgresCheckpointStore(pool),
        repo,
        name=settings.checkpoint_name,
        events_topic=settings.events_topic,
        experiments_topic=settings.experiments_topic,
        partitions=partitions,
        resume=resume,
        forwarder=forwarder,
        checkpoint_interval_s=settings.checkpoint_interval_s,
        refresh_interval_s=settings.refresh_interval_s,
    )
    intake.subscribe()
    await intake.consumer.start()
    await forwarder.consumer.start()
    return intake


GC_PAUSES = Histogram(
    "finops_experiments_gc_pause_seconds",
    "Garbage collections of the process (each one pauses the event loop), by generation",
    ["generation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)


def time_gc_pauses() -> Callable[[str, dict[str, int]], None]:
    """Observe every collection's duration on :data:`GC_PAUSES`; returns the callback
    installed in ``gc.callbacks`` (for its removal)."""
    started = 0.0

    def observe(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - started)

    gc.callbacks.append(observe)
    return observe


def freeze_startup_heap() -> None:
    """Move everything allocated so far out of the garbage collector's sight.

    The modules, the Faust app and the clients live as long as the process; left in the
    oldest generation, every full collection walks their ~150,000 objects, which paused the
    event loop (and so every request) for tens of milliseconds: the assignment API's p99
    stalls (see docs/experiments.md, "Assignment latency").
    """
    gc.collect()
    gc.freeze()


async def _intake_check() -> None:
    runner = [t for t in asyncio.all_tasks() if t.get_name() == "experiments-intake"]
    if not runner or runner[0].done():
        raise RuntimeError("the event intake is not running")
