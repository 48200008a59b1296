"""Assembles the healer: its Faust app and HTTP API in one process. No I/O at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from finops.common.auth import TokenVerifier
from finops.common.checkpoints import PostgresCheckpointStore
from finops.common.gc_pauses import gc_pauses_watched
from finops.common.health import postgres_check, redis_check
from finops.common.http import ReadinessCheck
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import end_process_if_failed, finish, with_shared_resources
from finops.common.log_position import plan_resume
from finops.common.stream_service import create_stream_service_app
from finops.common.streams import make_faust_app
from finops.healer.adapters.catalog import catalog_from_prices
from finops.healer.adapters.circuits import CircuitsView
from finops.healer.adapters.circuits_stream import (
    BreakerPipeline,
    breaker_pipeline,
    broker_outage,
)
from finops.healer.adapters.effectiveness import OutcomeIntake
from finops.healer.adapters.healing_log import HealingLog
from finops.healer.adapters.labels import LabelSync, PostgresLabelStore
from finops.healer.adapters.ledger_store import PostgresLedgerStore
from finops.healer.agents import register_agents
from finops.healer.api.advice import router as advice_router
from finops.healer.api.circuits import router as circuits_router
from finops.healer.api.labels import router as labels_router
from finops.healer.api.stats import router as stats_router
from finops.healer.domain.advice import Advisor
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.settings import HealerSettings


def create_app(
    settings: HealerSettings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The healer app; ``verifier`` replaces the token verifier built on startup."""
    settings = settings or HealerSettings()
    faust_app = make_faust_app(settings)
    register_agents(faust_app)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # Their background tasks stop (and checkpoint) before the pool closes; the advisor
        # reads breaker states from the circuits view. One bound for every wait for the broker.
        app.state.broker_outage = broker_outage(settings)
        async with (
            _error_classifier(app, settings),
            _circuits_view(app, settings),
            breaker_pipeline(
                settings,
                lambda: app.state.classifier,
                app.state.circuits,
                PostgresCheckpointStore(app.state.db, "healer_checkpoints"),
                app.state.broker_outage,
            ) as breakers,
            _advice(app, settings),
        ):
            app.state.breakers = breakers
            # What start-up allocated (the taught classifier, the restored ledger, the clients)
            # is frozen out of the collector's full scans, which stalled requests.
            with gc_pauses_watched("healer", freeze=settings.freeze_startup_heap):
                yield

    app = create_stream_service_app(
        settings,
        faust_app,
        title="FinOps healer",
        description="Error patterns, remedies and fleet-wide circuit breakers.",
        resources=with_shared_resources(
            resources, settings, postgres_pool_size=4, verifier=verifier
        ),
        readiness=_readiness,
    )
    app.include_router(labels_router)
    app.include_router(circuits_router)
    app.include_router(advice_router)
    app.include_router(stats_router)
    return app


@asynccontextmanager
async def _error_classifier(app: FastAPI, settings: HealerSettings) -> AsyncIterator[None]:
    """The instance's classifier, taught every stored label before the first request and
    then whatever other instances store (``app.state.classifier``, ``app.state.labels``)."""
    app.state.classifier = ErrorClassifier()
    app.state.labels = LabelSync(PostgresLabelStore(app.state.db), app.state.classifier)
    await app.state.labels.catch_up()
    stop = asyncio.Event()
    refresh = asyncio.create_task(
        app.state.labels.run(stop, settings.label_refresh_interval_s), name="healer-labels"
    )
    app.state.label_refresh = refresh
    end_process_if_failed(refresh, "the label refresh", stop, enabled=settings.exit_on_loop_failure)
    try:
        yield
    finally:
        stop.set()
        await finish(refresh, timeout=10)


@asynccontextmanager
async def _circuits_view(app: FastAPI, settings: HealerSettings) -> AsyncIterator[None]:
    """Every breaker's state, read from the compacted topic (``app.state.circuits``)."""
    app.state.circuits = CircuitsView(
        make_consumer(settings, group_id=None), settings.circuits_topic
    )
    try:  # stop() stops the consumer also when the start failed after starting it
        await app.state.circuits.start()
        end_process_if_failed(
            app.state.circuits.task,
            "the circuit-breaker reader",
            app.state.circuits.stopping,
            enabled=settings.exit_on_loop_failure,
        )
        yield
    finally:
        await app.state.circuits.stop()


def _readiness(app: FastAPI) -> dict[str, ReadinessCheck]:
    """The instance's dependencies, and each of its loops still running."""
    return {
        "postgres": lambda: postgres_check(app.state.db),
        "redis": lambda: redis_check(app.state.redis),
        "circuits": lambda: _circuits_check(app),
        "outcomes": lambda: _loop_check(
            app.state.outcome_loop, "the outcome intake is not running"
        ),
        "labels": lambda: _loop_check(app.state.label_refresh, "the label refresh is not running"),
    }


async def _circuits_check(app: FastAPI) -> None:
    if not app.state.circuits.running:
        raise RuntimeError("the circuit-breaker reader is not running")
    breakers: BreakerPipeline = app.state.breakers
    await _loop_check(breakers.loops, "the circuit breakers' stream loops are not running")
    # set when a publish starts waiting for the broker, cleared when one is acknowledged
    problem = breakers.outage.problem()
    if problem is not None:
        raise RuntimeError(problem)


async def _loop_check(loop: asyncio.Task[None], not_running: str) -> None:
    """A loop that ended (with FINOPS_EXIT_ON_LOOP_FAILURE off, the process stays up) makes
    the instance not ready: what it serves no longer moves on."""
    if loop.done():
        raise RuntimeError(not_running)


@asynccontextmanager
async def _advice(app: FastAPI, settings: HealerSettings) -> AsyncIterator[None]:
    """The advisor (``app.state.advisor``), the advice log (``app.state.healing_log``) and the
    outcome intake that teaches the advisor and keeps the stats (``app.state.outcomes``).

    Breaker states come from the circuits view (``app.state.circuits``): a fallback never
    picks a (provider, model) whose breaker is open.
    """
    producer = make_producer(settings)
    consumer = make_consumer(settings, group_id=None, max_poll_records=2000)
    async with AsyncExitStack() as clients:
        # stopped last to first, also when the start fails (PostgreSQL down for the restore)
        clients.push_async_callback(producer.stop)
        clients.push_async_callback(consumer.stop)
        await producer.start()
        outcomes = OutcomeIntake(
            HealingLedger(),
            consumer,
            PostgresLedgerStore(app.state.db),
            app.state.classifier,
            name=settings.effectiveness_checkpoint_name,
            checkpoint_interval_s=settings.effectiveness_checkpoint_interval_s,
            producer=producer,
        )
        await outcomes.restore()
        outcomes.resume_from(
            await plan_resume(
                settings, outcomes.offsets, outcomes.cluster_id, what="healer outcomes"
            )
        )
        await outcomes.start()
        app.state.outcomes = outcomes
        # a delivery the broker timed out is sent again, within the breakers' outage bound
        app.state.healing_log = HealingLog(producer, app.state.broker_outage)
        app.state.advisor = Advisor(
            catalog_from_prices(settings.fallback_models),
            app.state.circuits,
            outcomes.ledger.learner,
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(outcomes.run(stop), name="healer-outcomes")
        app.state.outcome_loop = runner
        end_process_if_failed(
            runner, "the outcome intake", stop, enabled=settings.exit_on_loop_failure
        )
        try:
            yield
        finally:
            stop.set()
            await finish(runner, timeout=30)
            # before producer.stop(): its flush fails what it holds; nothing is sent again then
            await app.state.healing_log.close(timeout=5.0)
