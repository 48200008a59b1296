"""Healer: advice API latency and error events classified per second, each with its baseline.

Starts its own stack (PostgreSQL, Redis, broker with its log in memory, auth, healer) on
free ports in a temporary folder (see ``_harness.private_stack``), then measures, in one run:

1. the raw aiokafka consume rate of the same error records (baseline, this process);
2. the healer's rate from ``agent.error.v1`` to its ledger (decode, classify, learn), read
   from its own Prometheus counter;
3. ``GET /healthz`` of the healer at a fixed rate (baseline: the HTTP stack alone);
4. ``POST /api/healing/advice`` at the same rate (classify, choose a remedy, publish the
   advice on ``finops.healing.v1``).

Targets (issue 10): >= 5,000 error events/s per worker; advice p99 <= 10 ms at 500/s.

    .venv/bin/python bench/healer.py [--events 30000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import sys

import aiohttp
from _harness import Series, ServiceBench

from finops.common.events import error_event
from finops.common.topics import AGENT_ERROR

APPLIED = 'finops_healer_outcome_records_total{outcome="applied",topic="agent.error.v1"}'
QUICK_ARGS = ["--events", "20000", "--seconds", "1", "--rate", "100"]
QUICK_SECONDS = 22
#: (status, provider, error part) of the errors agents report, round robin
ERRORS = [
    (429, "openai", {"type": "requests", "provider_code": "rate_limit_exceeded",
                     "message": "Rate limit reached for gpt-4o. Please try again in 6ms.",
                     "headers": {"retry-after-ms": "6"}}),
    (529, "anthropic", {"type": "overloaded_error", "message": "Overloaded"}),
    (400, "openai", {"type": "invalid_request_error", "provider_code": "context_length_exceeded",
                     "message": "This model's maximum context length is 128000 tokens."}),
    (500, "openai", {"type": "server_error", "message": "The server had an error."}),
    (401, "anthropic", {"type": "authentication_error", "message": "invalid x-api-key"}),
    (429, "google", {"type": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted"}),
]  # fmt: skip


def error_data(i: int) -> dict:
    status, provider, error = ERRORS[i % len(ERRORS)]
    return {
        "agent_id": f"agent-{i % 50}",
        "task_type": f"task-{i % 20}",
        "provider": provider,
        "model": "gpt-4o" if provider == "openai" else "claude-sonnet-4-5",
        "error": {"status_code": status, **error},
        "request": {"input_tokens": 150_000, "max_tokens": 4_000},
    }


def advice_body(i: int) -> dict:
    """The body of the i-th advice request: the error's data without ``agent_id``, which
    defaults to the caller (the bench's agent account may only speak for itself: another
    agent's id is refused with 403 ``agent_mismatch``)."""
    body = error_data(i)
    del body["agent_id"]
    return body


async def advise(session: aiohttp.ClientSession, url: str, i: int) -> bool:
    async with session.post(f"{url}/api/healing/advice", json=advice_body(i)) as r:
        await r.read()
        return r.status == 200


BENCH = ServiceBench(
    "healer",
    APPLIED,
    AGENT_ERROR.name,
    lambda n: (error_event(error_data(i)) for i in range(n)),
    advise,
    "bench/healer #10",
    "healer, agent.error → ledger (classify, learn), one worker",
    "POST /api/healing/advice",
    # The advice latency is measured once the breakers' stage 1 and the validating consumer
    # have read every event too (the ledger is usually first).
    settled=(
        Series("finops_healer_breaker_outcomes_total"),
        Series(
            "finops_stream_events_total",
            (("service", "healer"), ("topic", AGENT_ERROR.name)),
        ),
    ),
)


def main() -> int:
    return BENCH.main(__doc__, events=30_000)


if __name__ == "__main__":
    sys.exit(main())
