"""Prometheus metrics: one registry per process, scraped at ``GET /metrics``."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from finops.common.errors import NotAuthenticated

HTTP_REQUESTS = Counter(
    "finops_http_requests_total",
    "HTTP requests answered (health, readiness and metrics included), by service, route (path"
    " template, or unmatched), method and status code",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "finops_http_request_duration_seconds",
    "Seconds from a request's arrival to its answer, by service, route and method",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def install_metrics_endpoint(app: FastAPI, token: str | None = None) -> None:
    """``GET /metrics``. With ``token`` (``FINOPS_METRICS_TOKEN``) it answers only a request
    that carries it, ``Authorization: Bearer <token>``, and anything else 401
    ``not_authenticated``: the spend gauges name agents and teams and what each spent."""
    expected = token.encode() if token else None

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if expected is not None:
            # the scheme's case does not matter (RFC 9110), the token's does
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
                raise NotAuthenticated(
                    "GET /metrics asks for the bearer token FINOPS_METRICS_TOKEN holds"
                )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


STREAM_EVENTS = Counter(
    "finops_stream_events_total",
    "Records a stream service's consumers handled, by service, topic and outcome"
    " (processed, or dead_lettered: parked on the topic's .dlq)",
    ["service", "topic", "outcome"],
)
STREAM_OUTCOMES = ("processed", "dead_lettered")


def export_stream_counts(
    service: str, topics: Iterable[str], outcomes: Iterable[str] = STREAM_OUTCOMES
) -> None:
    """Export ``finops_stream_events_total`` of ``service`` on each of ``topics`` at 0 for
    each outcome, before a record is counted.

    A series that appears with its first count holds 1 from its first sample on, so
    ``increase()`` over any window sees no increase: the alert ``FinopsDeadLetters`` would
    miss the first record parked on a topic after each start. Called where a reader starts.

    Examples
    --------
    >>> export_stream_counts("example", ["example.v1"], ["dead_lettered"])
    >>> labels = {"service": "example", "topic": "example.v1", "outcome": "dead_lettered"}
    >>> REGISTRY.get_sample_value("finops_stream_events_total", labels)
    0.0
    """
    for topic in topics:
        for outcome in outcomes:
            STREAM_EVENTS.labels(service, topic, outcome)


def counter_by(
    name: str,
    documentation: str,
    label: str,
    values: Iterable[str],
    registry: CollectorRegistry = REGISTRY,
) -> Counter:
    """A counter with one label whose every value is exported at 0 from the start, so that
    the first count of one shows in a ``rate()`` and a dashboard lists them all.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> _ = counter_by("example_total", "an example", "kind", ["a", "b"], registry)
    >>> registry.get_sample_value("example_total", {"kind": "b"})
    0.0
    """
    counter = Counter(name, documentation, [label], registry=registry)
    for value in values:
        counter.labels(value)
    return counter
