"""The optimizer's spend gauges read from its analytics at each scrape: the p95 latency in
seconds (Prometheus' base unit, which `promtool check metrics` asks for) next to the first
name's milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from finops.common.events import LlmCallEvent, llm_call_event
from finops.optimizer.adapters.metrics import SPEND
from finops.optimizer.domain.analytics import SpendAnalytics


@pytest.fixture
def analytics() -> Iterator[SpendAnalytics]:
    analytics = SpendAnalytics()
    before = SPEND.source
    SPEND.source = lambda: SimpleNamespace(analytics=analytics)
    yield analytics
    SPEND.source = before


def call(task_type: str, latency_ms: float) -> LlmCallEvent:
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": "gauge-bot",
                "task_type": task_type,
                "provider": "openai",
                "model": "gpt-4o-mini",
                "usage": {"input_tokens": 10, "output_tokens": 5},
                "cost_usd": 0.01,
                "latency_ms": latency_ms,
                "success": True,
            },
            event_id=uuid.uuid4(),
            time=datetime(2026, 12, 7, tzinfo=UTC),
        )
    )


def test_the_p95_latency_is_exported_in_seconds_and_in_milliseconds(analytics):
    for _ in range(20):
        analytics.observe(call("gauge-task", 2500.0))
    labels = {"dimension": "task_type", "key": "gauge-task"}
    ms = REGISTRY.get_sample_value("finops_latency_p95_ms", labels)
    seconds = REGISTRY.get_sample_value("finops_latency_p95_seconds", labels)
    assert ms is not None and ms == pytest.approx(2500.0, rel=0.02)
    assert seconds == pytest.approx(ms / 1000)
