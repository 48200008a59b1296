"""Assembles the experiments: definitions (PostgreSQL), streaming analysis, HTTP API and Faust
app in one process. No I/O at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from finops.common.auth import TokenVerifier
from finops.common.datastores import is_dependency_failure
from finops.common.gc_pauses import gc_pauses_watched
from finops.common.health import postgres_check, redis_check
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import finish, with_shared_resources
from finops.common.log_position import ResumePlan, plan_resume
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.experiments.adapters.checkpoints import PostgresCheckpointStore
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.adapters.stream import AnalysisIntake
from finops.experiments.agents import register_agents
from finops.experiments.api.routes import router
from finops.experiments.settings import ExperimentsSettings

log = logging.getLogger(__name__)

#: the first wait before a new intake after a dependency failure; it doubles up to the max
RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 10.0


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
            keep_intake_running(app, reopen, stop), name="experiments-intake"
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
    await intake.start()
    await forwarder.start(settings.cost_topic)
    return intake


async def stop_intake(intake: AnalysisIntake) -> None:
    """Stop both stages' consumers (again is harmless)."""
    await intake.consumer.stop()
    if intake.forwarder is not None:
        await intake.forwarder.consumer.stop()


def _dependency_failed(exc: BaseException | None) -> bool:
    """Whether PostgreSQL or the broker failed under ``exc``, or under what caused it (a
    partition that could not be adopted)."""
    while exc is not None:
        if is_dependency_failure(exc) or isinstance(exc, KafkaError):
            return True
        exc = exc.__cause__
    return False


async def keep_intake_running(
    app: FastAPI, reopen: Callable[[], Awaitable[AnalysisIntake]], stop: asyncio.Event
) -> None:
    """Run ``app.state.intake`` until ``stop``. When PostgreSQL or the broker fails under it,
    stop it and open a new one, which starts from the checkpoints as a restarted service does
    (nothing lost, nothing counted twice), retrying with backoff until the dependency answers;
    meanwhile ``app.state.intake_failure`` says why the intake is not ready. Any other failure
    ends the loop (and readiness)."""
    delay = RESTART_DELAY_S
    while True:
        intake = app.state.intake
        try:
            await intake.run(stop)
            return
        except Exception as exc:
            if not _dependency_failed(exc):
                log.exception("the event intake failed")
                raise
            app.state.intake_failure = exc
            log.warning(
                "a dependency failed under the event intake; restarting it from its checkpoints",
                extra={"error": repr(exc)},
            )
        finally:
            await stop_intake(intake)
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            delay = min(2 * delay, MAX_RESTART_DELAY_S)
            try:
                app.state.intake = await reopen()
                break
            except Exception as exc:
                if not _dependency_failed(exc):
                    raise
                app.state.intake_failure = exc
        app.state.intake_failure = None


async def _intake_check(app: FastAPI) -> None:
    runner = [t for t in asyncio.all_tasks() if t.get_name() == "experiments-intake"]
    if not runner or runner[0].done():
        raise RuntimeError("the event intake is not running")
    failure = getattr(app.state, "intake_failure", None)
    if failure is not None:
        raise RuntimeError(f"the event intake is restarting after {failure!r}")
