"""The circuit breakers' stream loops: forward outcomes by provider/model, count, publish.

See :mod:`finops.healer.adapters.circuits` for the two stages. Stage 1 is an
:class:`~finops.common.consumer.AtLeastOnceConsumer` that takes batches of cost and error
events, produces their outcomes, waits for the acknowledgements and only then commits (at
least once). Records that are not an event of the type their topic carries (one that does not
decode, or an ``agent.llm_call`` on ``agent.error.v1`` and the other way round) are not
handled here: the validating agent on ``agent.error.v1`` parks those of that topic on the
dead-letter topic (the optimizer and the experiments service park those of ``agent.cost.v1``);
stage 1 counts them and goes on.
Stage 2 is :class:`~finops.healer.adapters.breaker_shards.BreakerShards`: the breakers of the
outcome partitions an instance owns, checkpointed with their offsets (exactly once in the
counts; a forwarded outcome that does not decode is parked on
``finops.provider-outcomes.v1.dlq``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from finops.common.broker_outage import BrokerOutage, Outgoing, publish_acknowledged
from finops.common.checkpoints import PostgresCheckpointStore
from finops.common.consumer import AtLeastOnceConsumer, Handler
from finops.common.events import ErrorEvent, EventTopics, LlmCallEvent
from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import end_process_if_failed, finish, run_together
from finops.common.log_position import ResumePlan, plan_resume
from finops.common.metrics import counter_by
from finops.common.partitions import HANDLE_AT_ONCE
from finops.common.provider_errors.payload import from_error_data
from finops.healer.adapters.breaker_shards import BreakerShards, PublishedCircuits
from finops.healer.adapters.circuits import ProviderOutcome, reporting_agent
from finops.healer.domain.breakers import BreakerConfig, counts_against_provider
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

log = logging.getLogger(__name__)

OUTCOMES = counter_by(
    "finops_healer_breaker_outcomes_total",
    "Calls read for the circuit breakers, by outcome (success, fault, not_a_provider_fault,"
    " unsuccessful_call, undecodable; repeated: a fault whose event id was read already)",
    "outcome",
    ("success", "fault", "not_a_provider_fault", "unsuccessful_call", "undecodable", "repeated"),
)
#: provider fault ids one instance's intake remembers (in memory only: a restart or a
#: rebalance forgets them), so that an error read again counts once in the metrics below
FAULT_IDS = 65_536
PROVIDER_OUTCOMES = Counter(
    "finops_healer_breaker_provider_outcomes_total",
    "Calls forwarded to the circuit breakers, by provider and outcome (success or fault)",
    ["provider", "outcome"],
)
#: The provider label of the calls of providers past an instance's first
#: ``breaker_metric_providers``.
OTHER_PROVIDERS = "__other__"
#: the outcomes counted by provider
PROVIDER_OUTCOME_KINDS = ("success", "fault")


class ProviderOutcomeCounter:
    """Counts forwarded outcomes by provider on ``counter``, with at most ``max_providers``
    provider labels: the first providers seen keep their names, later ones are counted as
    :data:`OTHER_PROVIDERS` (provider names come from agents' events)."""

    def __init__(self, counter: Counter, max_providers: int) -> None:
        self.counter = counter
        self.max_providers = max_providers
        self._named: set[str] = set()  # labels of their own; their series exist
        self._other_started = False  # whether the OTHER_PROVIDERS series exist

    def label(self, provider: str) -> str:
        """``provider``'s label; a label's first use starts both its series at 0, so that the
        first fault is an increase (``increase()`` counts nothing in a series' first sample)."""
        if provider in self._named:
            return provider
        if len(self._named) < self.max_providers:
            self._named.add(provider)
            self._start(provider)
            return provider
        if not self._other_started:
            self._other_started = True
            self._start(OTHER_PROVIDERS)
        return OTHER_PROVIDERS

    def _start(self, label: str) -> None:
        for outcome in PROVIDER_OUTCOME_KINDS:
            self.counter.labels(label, outcome)

    def count(self, provider: str, outcome: str) -> None:
        self.counter.labels(self.label(provider), outcome).inc()


def broker_outage(settings: HealerSettings) -> BrokerOutage:
    """The bound of the healer's wait for a broker that does not take its records."""
    return BrokerOutage(settings.broker_outage_tolerance_s, settings.broker_ack_wait_s)


def breaker_config(settings: HealerSettings) -> BreakerConfig:
    return BreakerConfig(
        window_s=settings.breaker_window_s,
        min_calls=settings.breaker_min_calls,
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        max_cooldown_s=settings.breaker_max_cooldown_s,
        probes_to_close=settings.breaker_probes_to_close,
        quorum=settings.breaker_quorum,
    )


class OutcomeForwarder:
    """Stage 1: what each cost/error record says about its provider/model, forwarded keyed by
    provider/model. ``classifier`` is looked up when needed (it learns labels while the
    service runs)."""

    def __init__(
        self,
        settings: HealerSettings,
        classifier: Callable[[], ErrorClassifier],
        by_provider: ProviderOutcomeCounter | None = None,
        *,
        outage: BrokerOutage | None = None,
    ) -> None:
        self.settings = settings
        #: the instance's wait for a broker that does not take records (see forwarded)
        self.outage = outage or broker_outage(settings)
        self.classifier = classifier
        self.by_provider = by_provider or ProviderOutcomeCounter(
            PROVIDER_OUTCOMES, settings.breaker_metric_providers
        )
        #: the event topics, each decoded by the event type it carries
        self.event_topics = EventTopics(settings.cost_topic, settings.error_topic)
        self._forwarded: list[Outgoing] = []
        #: the ids of the provider faults this instance read: one read again (the SDK sends
        #: the error a cancelled call gave up after again, the same event with its experiment
        #: tag) is forwarded (the breaker counts an id once) but not counted again by provider
        self.fault_ids = IdDedupe(FAULT_IDS)

    def outcome(self, topic: str, value: bytes) -> ProviderOutcome | None:
        """What one cost/error record of ``topic`` says about its provider/model, if anything
        (nothing for a record that is not an event of the type ``topic`` carries)."""
        try:
            event = self.event_topics.decode(topic, value)
        except (ValueError, TypeError):
            OUTCOMES.labels("undecodable").inc()  # parked by the service's other readers
            return None
        at = event.time.timestamp()
        if isinstance(event, LlmCallEvent):
            data = event.data
            if not data.success:
                OUTCOMES.labels("unsuccessful_call").inc()
                return None
            OUTCOMES.labels("success").inc()
            self.by_provider.count(data.provider, "success")
            return ProviderOutcome(
                str(event.id),
                data.provider,
                data.model,
                False,
                at,
                agent=reporting_agent(event.agent_id, data.principal),
            )
        if isinstance(event, ErrorEvent):
            reported = from_error_data(event.data)
            kind = self.classifier().classify(reported.error, reported.hint).kind
            if not counts_against_provider(kind):
                OUTCOMES.labels("not_a_provider_fault").inc()
                return None
            failed = event.data
            if self.fault_ids.add(fingerprint(event.id)):
                OUTCOMES.labels("fault").inc()
                self.by_provider.count(failed.provider, "fault")
            else:
                OUTCOMES.labels("repeated").inc()
            return ProviderOutcome(
                str(event.id),
                failed.provider,
                failed.model,
                True,
                at,
                kind.value,
                agent=reporting_agent(event.agent_id, failed.principal),
            )
        return None

    async def forward(self, record: Any) -> None:
        """Queue one record's outcome, keyed by provider/model (sent by :meth:`forwarded`)."""
        outcome = self.outcome(record.topic, record.value)
        if outcome is not None:
            self._forwarded.append(
                Outgoing(self.settings.outcomes_topic, outcome.to_json(), outcome.key.encode())
            )

    async def forwarded(self, producer: AIOKafkaProducer) -> None:
        """Send every outcome queued so far and wait until each is acknowledged; a broker
        that does not take them is waited for (:mod:`finops.common.broker_outage`; an outcome
        sent twice is counted once, by its event id)."""
        records, self._forwarded = self._forwarded, []
        await publish_acknowledged(producer, records, self.outage, what="provider outcomes")


def forwarding_loop(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handler: Handler,
    flush: Callable[[], Awaitable[None]],
) -> AtLeastOnceConsumer:
    """Stage 1's loop: ``HANDLE_AT_ONCE`` records, then ``flush``, then the API's turn (one
    try a record: it only skips what it cannot read)."""
    return AtLeastOnceConsumer(
        consumer,
        producer,
        handler,
        service="healer",
        max_attempts=1,
        records_per_turn=HANDLE_AT_ONCE,
        flush=flush,
    )


@dataclass(frozen=True)
class BreakerPipeline:
    """A running :func:`breaker_pipeline`: the breakers this instance owns, and the task that
    runs both stages' loops (the healer's readiness checks this one, not any other's)."""

    owners: BreakerShards
    loops: asyncio.Task[None]
    #: the wait for a broker that does not take the loops' records (readiness reports it)
    outage: BrokerOutage


@asynccontextmanager
async def breaker_pipeline(
    settings: HealerSettings,
    classifier: Callable[[], ErrorClassifier],
    published: PublishedCircuits,
    store: PostgresCheckpointStore,
    outage: BrokerOutage | None = None,
) -> AsyncIterator[BreakerPipeline]:
    """The breakers' consumers, producer and loops, running for the ``with`` block;
    ``outage`` is the instance's wait for a broker that does not take records."""
    waits = outage or broker_outage(settings)
    forwarder = OutcomeForwarder(settings, classifier, outage=waits)
    producer = make_producer(settings)

    async def flush() -> None:
        await forwarder.forwarded(producer)

    async def resume(saved: Mapping[str, int], cluster_id: str | None) -> ResumePlan:
        return await plan_resume(settings, saved, cluster_id, what="healer breakers")

    calls = forwarding_loop(
        make_consumer(settings, group_id=settings.breaker_group),
        producer,
        forwarder.forward,
        flush,
    )
    owners = BreakerShards(
        make_consumer(settings, group_id=settings.breaker_owner_group),
        producer,
        store,
        config=breaker_config(settings),
        topic=settings.outcomes_topic,
        resume=resume,
        name=settings.breaker_checkpoint_name,
        circuits_topic=settings.circuits_topic,
        alerts_topic=settings.alerts_topic,
        published=published,
        outage=waits,
        adopt_wait_s=settings.breaker_adopt_wait_s,
        dedupe_ids=settings.breaker_dedupe_ids,
        checkpoint_interval_s=settings.breaker_checkpoint_interval_s,
        tick_interval_s=settings.breaker_publish_interval_s,
        republish_interval_s=settings.breaker_republish_interval_s,
    )
    async with AsyncExitStack() as clients:
        # stopped last to first, also when a start fails (stopping one not started is safe)
        clients.push_async_callback(producer.stop)
        clients.push_async_callback(owners.consumer.stop)
        clients.push_async_callback(calls.consumer.stop)
        await producer.start()
        await calls.start_subscribed([settings.error_topic, settings.cost_topic])
        await owners.start()
        stop = asyncio.Event()
        runner = asyncio.create_task(
            run_together(calls.run(stop), owners.run(stop)), name="healer-breakers"
        )
        end_process_if_failed(
            runner,
            "the circuit breakers' stream loops",
            stop,
            enabled=settings.exit_on_loop_failure,
        )
        try:
            yield BreakerPipeline(owners, runner, waits)
        finally:
            stop.set()
            await finish(runner, timeout=30)
