"""Assembles the experiments: definitions (PostgreSQL), streaming analysis, HTTP API and Faust
app in one process. No I/O at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from finops.common.auth import TokenVerifier
from finops.common.events import EventTopics
from finops.common.gc_pauses import gc_pauses_watched
from finops.common.health import postgres_check, redis_check
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import end_process_if_failed, finish, with_shared_resources
from finops.common.log_position import ResumePlan, plan_resume
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.experiments.adapters.analysis_intake import AnalysisIntake
from finops.experiments.adapters.checkpoints import PostgresCheckpointStore
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.adapters.intake_supervisor import (
    keep_intake_running,
    restarting_reason,
    stop_intake,
)
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.agents import register_agents
from finops.experiments.api.routes import router
from finops.experiments.settings import ExperimentsSettings


def create_app(
    settings: ExperimentsSettings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The experiments app; ``verifier`` replaces the token verifier built on startup."""
    settings = settings or ExperimentsSettings()
    faust_app = make_faust_app(settings)
    register_agents(faust_app, settings.experiments_topic)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        repo = ExperimentRepository(app.state.db, announce_on=settings.experiments_topic)
        app.state.experiments = repo
        producer = make_producer(settings)
        await producer.start()
        app.state.intake = await open_intake(settings, app.state.db, producer, repo)
        app.state.intake_failure = None

        async def reopen() -> AnalysisIntake:
            return await open_intake(settings, app.state.db, producer, repo)

        stop = asyncio.Event()
        runner = asyncio.create_task(
            keep_intake_running(app.state, reopen, stop, healthy_s=settings.intake_healthy_after_s),
            name="experiments-intake",
        )
        app.state.intake_task = runner
        end_process_if_failed(
            runner, "the event intake", stop, enabled=settings.exit_on_loop_failure
        )
        try:
            with gc_pauses_watched("experiments", freeze=settings.freeze_startup_heap):
                yield
        finally:
            stop.set()
            await finish(runner, timeout=30)
            await stop_intake(app.state.intake)
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
            "intake": lambda: _intake_check(app),
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
        make_consumer(settings, group_id=settings.consumer_group),
        producer,
        repo,
        events_topic=settings.events_topic,
        partitions=partitions,
        events=EventTopics(cost=settings.cost_topic, error=settings.error_topic),
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
    try:
        await intake.start()
        await forwarder.start()
    except BaseException:
        await stop_intake(intake)  # a consumer started and left behind would hold partitions
        raise
    return intake


async def _intake_check(app: FastAPI) -> None:
    # this app's loop, not a task of the same name in the process (another instance's)
    runner = getattr(app.state, "intake_task", None)
    if runner is None or runner.done():
        raise RuntimeError("the event intake is not running")
    reason = restarting_reason(app.state, app.state.settings.intake_healthy_after_s)
    if reason is not None:
        raise RuntimeError(reason)
