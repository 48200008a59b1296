"""A trickle of events goes out in the background, batch after batch, without a flush: an
agent that records a call now and then is heard while it runs, not only when it closes or
once ``batch_size`` events have piled up."""

from __future__ import annotations

import asyncio
import json

import httpx

from finops.client import AsyncFinOpsClient


class CountingIngest:
    """Accepts every batch and tells a waiter when ``delivered`` events have arrived."""

    def __init__(self) -> None:
        self.delivered = 0
        self.batches = 0
        self.arrived = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        self.delivered += len(batch)
        self.batches += 1
        self.arrived.set()
        return httpx.Response(202, json={"accepted": len(batch)})

    async def until(self, delivered: int) -> None:
        while self.delivered < delivered:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


async def test_each_event_of_a_trickle_is_sent_after_the_linger_without_a_flush() -> None:
    ingest = CountingIngest()
    client = AsyncFinOpsClient(
        ingest_url="http://ingest",
        agent_id="bot",
        token="static",
        transport=httpx.MockTransport(ingest),
        batch_size=500,
        linger_s=0.01,
    )
    for n in range(1, 6):
        await client.record_call(
            task_type="qa",
            provider="openai",
            model="gpt-4o-mini",
            usage={"input_tokens": 10, "output_tokens": 2},
            latency_ms=100,
        )
        await ingest.until(n)  # times out (10 s) when the sender does not wake
        assert client.stats.delivered == n
    assert ingest.batches == 5
    await client.close()
