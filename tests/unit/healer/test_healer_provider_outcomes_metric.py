"""The breakers' intake counts each forwarded call by provider, successes and provider faults
alike (the SDK's healing wrapper reports a failed call as an ``agent.error``, not as
``success: false``), with a bounded number of provider labels."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from support import llm_call

from finops.common.events import error_event
from finops.common.topics import AGENT_COST, AGENT_ERROR
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.adapters.circuits_stream import (
    OTHER_PROVIDERS,
    PROVIDER_OUTCOMES,
    OutcomeForwarder,
    ProviderOutcomeCounter,
)
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

OVERLOADED = "The model is overloaded. Please try again later."


def error(provider: str, status: int, message: str) -> bytes:
    event = error_event(
        {
            "agent_id": "bot",
            "task_type": "summarize",
            "provider": provider,
            "model": "m",
            "error": {"status_code": status, "message": message},
        }
    )
    return json.dumps(event).encode()


def call(provider: str, *, success: bool = True) -> bytes:
    return json.dumps(llm_call(provider=provider, model="m", success=success)).encode()


def read(intake: OutcomeForwarder, value: bytes) -> ProviderOutcome | None:
    """``value``'s outcome, read from the topic its event type is published to."""
    topic = AGENT_ERROR.name if b'"type": "agent.error"' in value else AGENT_COST.name
    return intake.outcome(topic, value)


def forwarder(max_providers: int) -> tuple[OutcomeForwarder, CollectorRegistry]:
    registry = CollectorRegistry()
    counter = Counter("provider_outcomes", "test", ["provider", "outcome"], registry=registry)
    counted = ProviderOutcomeCounter(counter, max_providers)
    classifier = ErrorClassifier()
    return OutcomeForwarder(HealerSettings(), lambda: classifier, counted), registry


def counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["provider"], sample.labels["outcome"]): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "provider_outcomes_total"
    }


def test_successes_and_provider_faults_are_counted_by_provider():
    intake, registry = forwarder(max_providers=8)
    for value in [
        call("anthropic"),
        call("anthropic"),
        error("anthropic", 529, OVERLOADED),
        call("openai"),
        error("openai", 503, OVERLOADED),
        error("openai", 500, "Internal server error"),
        # neither a success nor a fault of the provider: not counted by provider
        error("openai", 400, "max_tokens: Field required"),
        call("openai", success=False),
        b"not an event",
    ]:
        read(intake, value)
    assert counts(registry) == {
        ("anthropic", "success"): 2.0,
        ("anthropic", "fault"): 1.0,
        ("openai", "success"): 1.0,
        ("openai", "fault"): 2.0,
    }


def test_an_error_sent_again_with_its_experiment_tag_is_one_fault():
    # The SDK sends the error a cancelled call gave up after again, the same event with its
    # experiment tag: it counted twice in the provider's fault rate (the alert's), while the
    # breakers, which count an id once, saw one fault.
    intake, registry = forwarder(max_providers=8)
    first = json.loads(error("anthropic", 529, OVERLOADED))
    again = {**first, "data": {**first["data"], "experiment": {"id": "e", "variant": "B"}}}
    outcomes = [read(intake, json.dumps(event).encode()) for event in (first, again)]
    assert [o.event_id if o else None for o in outcomes] == [first["id"]] * 2  # forwarded
    assert counts(registry) == {("anthropic", "success"): 0.0, ("anthropic", "fault"): 1.0}


def test_providers_past_the_cap_are_counted_together_as_other():
    intake, registry = forwarder(max_providers=2)
    for provider in ["a", "b", "c", "d", "a"]:
        read(intake, error(provider, 503, OVERLOADED))
        read(intake, call(provider))
    assert counts(registry) == {
        ("a", "fault"): 2.0,
        ("a", "success"): 2.0,
        ("b", "fault"): 1.0,
        ("b", "success"): 1.0,
        (OTHER_PROVIDERS, "fault"): 2.0,
        (OTHER_PROVIDERS, "success"): 2.0,
    }


def test_the_service_counter_is_capped_by_the_setting():
    intake = OutcomeForwarder(HealerSettings(breaker_metric_providers=3), ErrorClassifier)
    assert intake.by_provider.counter is PROVIDER_OUTCOMES
    assert intake.by_provider.max_providers == 3


def test_a_providers_first_call_starts_its_fault_series_at_zero():
    """Prometheus' increase() counts nothing in a series' first sample: a fault series born
    at the first fault would hide that fault from the alert."""
    intake, registry = forwarder(max_providers=1)
    read(intake, call("anthropic"))
    read(intake, call("openai"))  # past the cap: __other__'s series start too
    assert counts(registry) == {
        ("anthropic", "success"): 1.0,
        ("anthropic", "fault"): 0.0,
        (OTHER_PROVIDERS, "success"): 1.0,
        (OTHER_PROVIDERS, "fault"): 0.0,
    }


def undecodable_count() -> float:
    value = REGISTRY.get_sample_value(
        "finops_healer_breaker_outcomes_total", {"outcome": "undecodable"}
    )
    return value or 0.0


def test_an_event_on_the_other_types_topic_is_no_outcome():
    # an agent.llm_call written to agent.error.v1 is a bad record (the validating agent parks
    # it), an agent.error on agent.cost.v1 too (the optimizer parks it): neither is a success
    # or a fault of its provider
    intake, registry = forwarder(max_providers=8)
    undecodable = undecodable_count()
    assert intake.outcome(AGENT_ERROR.name, call("anthropic")) is None
    assert intake.outcome(AGENT_COST.name, error("openai", 503, OVERLOADED)) is None
    assert counts(registry) == {}
    assert undecodable_count() == undecodable + 2
