"""Faust agents of the circuit breakers: forward outcomes by provider/model, update, publish.

See :mod:`finops.healer.adapters.circuits` for the two stages. Decoding failures are not
handled here: the validating agent on ``agent.error.v1`` parks them on the dead-letter topic;
these agents count them and go on. A forwarded outcome that does not decode (never written by
anyone but this code) is parked on ``finops.provider-outcomes.v1.dlq``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import faust
from prometheus_client import Counter

from finops.common.circuits import CircuitState
from finops.common.consumer import faust_handle
from finops.common.events import ErrorEvent, Event, LlmCallEvent
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
    """The breakers this instance owns and the Faust agents that feed and publish them.

    ``classifier`` and ``published`` are looked up when needed: the service opens them in
    its lifespan, after the agents are registered.
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

    def register(self, app: faust.App) -> None:
        settings = self.settings
        calls = app.topic(settings.error_topic, settings.cost_topic, value_serializer="raw")
        outcomes = app.topic(
            settings.outcomes_topic,
            value_serializer="raw",
            key_serializer="raw",
            partitions=settings.faust_topic_partitions,
        )
        circuits = app.topic(settings.circuits_topic, value_serializer="raw", key_serializer="raw")
        alerts = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw")

        async def publish(states: list[CircuitState], transitions: list[Transition]) -> None:
            for state in states:
                await circuits.send(key=state.key.encode(), value=state.to_json())
            for transition in transitions:
                TRANSITIONS.labels(transition.after.value).inc()
                alert = breaker_alert(transition)
                if alert is not None:
                    await alerts.send(key=alert.subject.encode(), value=_json(alert.to_dict()))

        async def forward(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                outcome = self.outcome(value)
                if outcome is not None:
                    await outcomes.send(key=outcome.key.encode(), value=outcome.to_json())

        async def update(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():

                async def handle(value: bytes) -> None:
                    transition = self.apply(ProviderOutcome.from_json(value))
                    if transition is not None:
                        # a state change is published at once, not at the next tick
                        await publish(self.board.drain_changed(), [transition])

                await faust_handle(app, event, handle, service="healer-breakers")

        async def tick() -> None:
            transitions = self.board.tick(time.time())
            await publish(self.board.drain_changed(), transitions)

        app.agent(calls, name="healer-breaker-outcomes")(forward)
        app.agent(outcomes, name="healer-breakers")(update)
        app.timer(settings.breaker_publish_interval_s, name="healer-breakers-publish")(tick)


def _json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()
