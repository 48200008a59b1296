"""Streaming spend analytics over ``agent.cost.v1`` (pure domain code, no I/O).

Calls, tokens, spend, success rate, cost per success, latency p50 / p95 and unpriced calls,
for the fleet and per agent, team, task type, provider and model, all-time and in tumbling
event-time windows, each event counted once. The parts, by role:

* :mod:`.spend` -- :class:`SpendAnalytics`, what callers use: it takes the events exactly once
  (dedupe memory, records taken) and answers the queries;
* :mod:`.counts` -- :class:`~.counts.SpendCounts`, the all-time totals and the windows of each
  granularity (:class:`~.counts.WindowSeries`): what an event adds to, late and out-of-range
  events, the hot path;
* :mod:`.state` -- the checkpoint format (:meth:`SpendAnalytics.to_state` /
  :meth:`~SpendAnalytics.from_state`), read both ways across versions;
* :mod:`.merge` -- the analytics of the union of parts that saw disjoint events
  (:meth:`SpendAnalytics.merged`).

Their building blocks are modules of their own in :mod:`finops.optimizer.domain`:
:mod:`~..aggregates` (one key's numbers and the rows of a query), :mod:`~..windows` (window
sizes, retention, selection), :mod:`~..latency_sketch`, :mod:`~..eventtime` and
:mod:`~..records_taken`. The names callers import are re-exported here, so
``from finops.optimizer.domain.analytics import SpendAnalytics`` works.
"""

from __future__ import annotations

from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.optimizer.domain.aggregates import (
    DIMENSIONS,
    FLEET,
    FLEET_KEY,
    METRICS,
    NONE_KEY,
    OTHER_KEY,
    Dimension,
    KeyedDimension,
    Metric,
)
from finops.optimizer.domain.analytics.spend import SpendAnalytics
from finops.optimizer.domain.analytics.state import STATE_VERSION
from finops.optimizer.domain.latency_sketch import LatencySketch
from finops.optimizer.domain.windows import GRANULARITIES

# the names callers import from this package (re-exported from the modules they live in)
__all__ = [
    "DIMENSIONS",
    "FLEET",
    "FLEET_KEY",
    "GRANULARITIES",
    "METRICS",
    "NONE_KEY",
    "OTHER_KEY",
    "STATE_VERSION",
    "Dimension",
    "IdDedupe",
    "KeyedDimension",
    "LatencySketch",
    "Metric",
    "SpendAnalytics",
    "fingerprint",
]
