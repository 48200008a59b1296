"""Spend figures for Prometheus, with bounded label cardinality.

Per dimension only the top ``k`` keys by spend are labelled; the rest are summed under
``key="__other__"``, so a fleet of ten thousand agents still exports a few dozen series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

TOP_K = 10
_FIELDS = (
    (
        "spend_usd",
        "finops_spend_usd",
        "Spend in USD since the optimizer's state began, by dimension and key (the top keys"
        " by spend, the rest summed as __other__)",
    ),
    (
        "calls",
        "finops_calls",
        "LLM calls counted since the optimizer's state began, by dimension and key",
    ),
    (
        "success_rate",
        "finops_success_ratio",
        "Share of those calls that succeeded (success true), by dimension and key",
    ),
    (
        "latency_p95_ms",
        "finops_latency_p95_seconds",
        "p95 latency of those calls in seconds, by dimension and key",
    ),
    # the same figure in milliseconds, its first name: kept for the dashboards and rules that
    # read it (Prometheus' naming asks for seconds: `promtool check metrics` flags it)
    (
        "latency_p95_ms",
        "finops_latency_p95_ms",
        "p95 latency of those calls in milliseconds (as finops_latency_p95_seconds), by"
        " dimension and key",
    ),
)
#: what a field's figure is multiplied by for a metric, when its unit is not the field's
_SCALE = {"finops_latency_p95_seconds": 0.001}


class SpendCollector(Collector):
    def __init__(self) -> None:
        self.source: Callable[[], Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The five families, with no samples until the optimizer's learning has started:
        declared from the start, they are known to the registry (which refuses a second
        metric of the same name) and listed on /metrics like every other metric."""
        engine = self.source() if self.source else None
        totals = engine.analytics.bounded_totals(TOP_K) if engine is not None else {}
        for field, name, doc in _FIELDS:
            family = GaugeMetricFamily(name, doc, labels=["dimension", "key"])
            for dimension, rows in totals.items():
                for row in rows:
                    value = row.get(field)
                    if value is not None:
                        scaled = float(value) * _SCALE.get(name, 1.0)
                        family.add_metric([dimension, str(row["key"])], scaled)
            yield family


SPEND = SpendCollector()
REGISTRY.register(SPEND)
