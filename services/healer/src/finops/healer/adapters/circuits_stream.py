"""The circuit breakers' stream loops: forward outcomes by provider/model, update, publish.

See :mod:`finops.healer.adapters.circuits` for the two stages. Each stage is an
:class:`~finops.common.consumer.AtLeastOnceConsumer` in its own group that takes batches,
produces, waits for the acknowledgements and only then commits (at least once; outcomes are
deduplicated by event id). Events that do not decode are not handled here: the validating
agent on ``agent.error.v1`` parks them on the dead-letter topic; stage 1 counts them and goes
on. A forwarded outcome that does not decode (never written by anyone but this code) is parked
by the consumer on ``finops.provider-outcomes.v1.dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from prometheus_client import Counter

from finops.common.circuits import CircuitState
from finops.common.consumer import AtLeastOnceConsumer, Handler
from finops.common.events import ErrorEvent, Event, LlmCallEvent
from finops.common.kafka import make_consumer, make_producer
from finops.common.lifespan import finish
from finops.common.partitions import HANDLE_AT_ONCE
from finops.healer.adapters.circuits import ProviderOutcome, RecentIds, breaker_alert
from finops.healer.domain.breakers import (
    BreakerBoard,
    BreakerConfig,
    Transition,
    counts_against_provider,
)
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.domain.payload import from_error_data
from finops.healer.domain.taxonomy import ErrorKind
from finops.healer.settings import HealerSettings

log = logging.getLogger(__name__)

OUTCOMES = Counter(
    "finops_healer_breaker_outcomes_total",
    "Calls read for the circuit breakers, by what they were",
    ["outcome"],
)
UPDATES = Counter(
    "finops_healer_breaker_updates_total", "Outcomes counted in the breakers this instance owns"
)
TRANSITIONS = Counter("finops_healer_breaker_transitions_total", "Breaker state changes", ["state"])


def breaker_config(settings: HealerSettings) -> BreakerConfig:
    return BreakerConfig(
        window_s=settings.breaker_window_s,
        min_calls=settings.breaker_min_calls,
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        max_cooldown_s=settings.breaker_max_cooldown_s,
        probes_to_close=settings.breaker_probes_to_close,
    )


class BreakerStream:
    """The breakers this instance owns, the stages that feed them and their publishing.

    ``classifier`` and ``published`` are looked up when needed (the classifier learns labels
    while the service runs).
    """

    def __init__(
        self,
        settings: HealerSettings,
        classifier: Callable[[], ErrorClassifier],
        published: Callable[[str, str], CircuitState | None],
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.board = BreakerBoard(breaker_config(settings), published=published)
        self.seen = RecentIds()
        self.outcomes_applied = 0
        #: the outcomes partition each breaker's outcomes come from
        self.partition_of: dict[tuple[str, str], int] = {}
        #: the partitions of the outcomes topic this instance owns
        self.owned: set[int] = set()
        self._forwarded: list[asyncio.Future[Any]] = []
        self._transitions: list[Transition] = []

    def outcome(self, value: bytes) -> ProviderOutcome | None:
        """Stage 1: what one cost/error record says about its provider/model, if anything."""
        try:
            event = Event.from_kafka(value)
        except (ValueError, TypeError):
            OUTCOMES.labels("undecodable").inc()  # parked by the validating agent
            return None
        at = event.time.timestamp()
        if isinstance(event, LlmCallEvent):
            data = event.data
            if not data.success:
                OUTCOMES.labels("unsuccessful_call").inc()
                return None
            OUTCOMES.labels("success").inc()
            return ProviderOutcome(str(event.id), data.provider, data.model, False, at)
        if isinstance(event, ErrorEvent):
            reported, hint = from_error_data(event.data)
            kind = self.classifier().classify(reported, hint).kind
            if not counts_against_provider(kind):
                OUTCOMES.labels("not_a_provider_fault").inc()
                return None
            OUTCOMES.labels("fault").inc()
            failed = event.data
            return ProviderOutcome(
                str(event.id), failed.provider, failed.model, True, at, kind.value
            )
        return None

    def apply(self, outcome: ProviderOutcome) -> Transition | None:
        """Stage 2: count one outcome in its breaker (once per event id)."""
        if not self.seen.add(outcome.event_id):
            return None
        self.outcomes_applied += 1
        UPDATES.inc()
        if outcome.failed:
            kind = ErrorKind(outcome.kind or ErrorKind.UNKNOWN)
            return self.board.failure(outcome.provider, outcome.model, kind, at=outcome.at)
        return self.board.success(outcome.provider, outcome.model, at=outcome.at)

    async def forward(self, record: Any, producer: AIOKafkaProducer) -> None:
        """Stage 1 for one record: send its outcome, keyed by provider/model."""
        outcome = self.outcome(record.value)
        if outcome is not None:
            self._forwarded.append(
                await producer.send(
                    self.settings.outcomes_topic, outcome.to_json(), key=outcome.key.encode()
                )
            )

    async def forwarded(self) -> None:
        """Wait until every outcome sent so far is acknowledged."""
        sends, self._forwarded = self._forwarded, []
        await asyncio.gather(*sends)

    async def update(self, record: Any) -> None:
        """Stage 2 for one record: count its outcome (raises for one that does not decode)."""
        if record.partition not in self.owned:
            return  # revoked while this batch was being processed: its next owner reads it
        outcome = ProviderOutcome.from_json(record.value)
        self.partition_of[(outcome.provider, outcome.model)] = record.partition
        transition = self.apply(outcome)
        if transition is not None:
            self._transitions.append(transition)

    async def publish_updates(self, producer: AIOKafkaProducer) -> None:
        """Publish what the outcomes counted so far changed (at once, not at the next tick)."""
        transitions, self._transitions = self._transitions, []
        if transitions:
            await self.publish(producer, transitions)

    def release(self, partitions: set[int]) -> None:
        """Forget the breakers of partitions another instance owns now: it publishes them,
        starting from what this one published last."""
        self.owned -= partitions
        gone = [key for key, p in self.partition_of.items() if p in partitions]
        for key in gone:
            del self.partition_of[key]
            self.board.forget(key)

    async def publish(self, producer: AIOKafkaProducer, transitions: list[Transition]) -> None:
        """Every changed breaker's state, and the alerts of the transitions."""
        sends = [
            await producer.send(self.settings.circuits_topic, s.to_json(), key=s.key.encode())
            for s in self.board.drain_changed()
        ]
        for transition in transitions:
            TRANSITIONS.labels(transition.after.value).inc()
            alert = breaker_alert(transition)
            if alert is not None:
                sends.append(
                    await producer.send(
                        self.settings.alerts_topic,
                        json.dumps(alert.to_dict(), default=str).encode(),
                        key=alert.subject.encode(),
                    )
                )
        await asyncio.gather(*sends)

    async def run(
        self,
        calls: AtLeastOnceConsumer,
        outcomes: AtLeastOnceConsumer,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> None:
        """Both stages and the publishing tick until ``stop``; offsets are committed only
        after what a batch produced is acknowledged (at least once)."""

        async def tick() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.breaker_publish_interval_s)
                await self.publish(producer, self.board.tick(time.time()))

        await asyncio.gather(calls.run(stop), outcomes.run(stop), tick())


def stage(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handler: Handler,
    flush: Callable[[], Awaitable[None]],
) -> AtLeastOnceConsumer:
    """One stage's loop: ``HANDLE_AT_ONCE`` records, then ``flush``, then the API's turn.

    One try a record: stage 1 only skips what it cannot read, and stage 2 counts an outcome
    once per event id, so a second try of one it failed on half-way would pass as counted.
    """
    return AtLeastOnceConsumer(
        consumer,
        producer,
        handler,
        service="healer",
        max_attempts=1,
        records_per_turn=HANDLE_AT_ONCE,
        flush=flush,
    )


class _Release(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stream: BreakerStream, producer: AIOKafkaProducer) -> None:
        self.stream = stream
        self.producer = producer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The next owner starts from the published state: publish the latest counts first.
        await self.stream.publish(self.producer, [])
        self.stream.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Nothing to load: a breaker starts from its published state when first used.
        self.stream.owned |= {tp.partition for tp in assigned}


@asynccontextmanager
async def breaker_pipeline(
    settings: HealerSettings,
    classifier: Callable[[], ErrorClassifier],
    published: Callable[[str, str], CircuitState | None],
) -> AsyncIterator[BreakerStream]:
    """The breakers' consumers, producer and loops, running for the ``with`` block."""
    stream = BreakerStream(settings, classifier, published)
    producer = make_producer(settings)

    async def forward(record: Any) -> None:
        await stream.forward(record, producer)

    calls = stage(
        make_consumer(settings, group_id=settings.breaker_group),
        producer,
        forward,
        stream.forwarded,
    )
    outcomes = stage(
        make_consumer(settings, group_id=settings.breaker_owner_group),
        producer,
        stream.update,
        lambda: stream.publish_updates(producer),
    )
    await producer.start()
    await calls.start_subscribed([settings.error_topic, settings.cost_topic])
    await outcomes.start_subscribed([settings.outcomes_topic], _Release(stream, producer))
    stop = asyncio.Event()
    runner = asyncio.create_task(
        stream.run(calls, outcomes, producer, stop), name="healer-breakers"
    )
    try:
        yield stream
    finally:
        stop.set()
        await finish(runner, timeout=30)
        await calls.consumer.stop()
        await outcomes.consumer.stop()
        await producer.stop()
