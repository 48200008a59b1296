"""SDK delivery policy against a scripted transport: batching, retries, rejects, overflow."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from finops.client import AsyncFinOpsClient, BufferFull, FinOpsClient


class ScriptedIngest:
    """Answers with the given statuses in turn (then 202), recording every batch."""

    def __init__(self, statuses=(), reject_indexes=()):
        self.statuses = list(statuses)
        self.reject_indexes = set(reject_indexes)
        self.batches: list[list[dict]] = []
        self.token_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/token":
            self.token_requests += 1
            assert b"grant_type=client_credentials" in request.content
            return httpx.Response(
                200, json={"access_token": f"t{self.token_requests}", "expires_in": 900}
            )
        batch = json.loads(request.content)
        status = self.statuses.pop(0) if self.statuses else 202
        if status == 422:
            details = [{"index": i, "field": "data.model"} for i in sorted(self.reject_indexes)]
            return httpx.Response(
                422, json={"error": {"code": "invalid_events", "details": details}}
            )
        if status == 202:
            self.batches.append(batch)
            return httpx.Response(202, json={"accepted": len(batch)})
        return httpx.Response(status, headers={"Retry-After": "0"}, json={"error": {"code": "x"}})

    @property
    def ids(self) -> list[str]:
        return [e["id"] for b in self.batches for e in b]


def client(ingest: ScriptedIngest, **kwargs) -> AsyncFinOpsClient:
    kwargs.setdefault("token", "static")
    return AsyncFinOpsClient(
        ingest_url="http://ingest",
        agent_id="bot",
        transport=httpx.MockTransport(ingest),
        max_backoff_s=0.01,
        **kwargs,
    )


async def record(c: AsyncFinOpsClient, n: int) -> list[str]:
    return [
        await c.record_call(
            task_type="qa",
            provider="openai",
            model="gpt-4o-mini",
            usage={"input_tokens": 10, "output_tokens": 2},
            latency_ms=100,
        )
        for _ in range(n)
    ]


async def test_events_are_batched_and_all_delivered_on_close():
    ingest = ScriptedIngest()
    c = client(ingest, batch_size=100, linger_s=5)
    ids = await record(c, 250)
    await c.close()
    assert ingest.ids == ids
    assert [len(b) for b in ingest.batches] == [100, 100, 50]
    assert c.stats.delivered == 250 and c.pending == 0
    first = ingest.batches[0][0]
    assert first["type"] == "agent.llm_call" and first["data"]["agent_id"] == "bot"


async def test_transient_failures_are_retried_until_delivered():
    ingest = ScriptedIngest(statuses=[503, 429, 500, 502])
    c = client(ingest, batch_size=10)
    ids = await record(c, 10)
    await c.flush(timeout=10)
    assert ingest.ids == ids
    assert c.stats.retries == 4
    await c.close()


async def test_invalid_events_are_dropped_and_reported_the_rest_delivered():
    ingest = ScriptedIngest(statuses=[422], reject_indexes=[1, 3])
    rejected: list[dict] = []
    c = client(ingest, batch_size=5, on_rejected=lambda events, reason: rejected.extend(events))
    ids = await record(c, 5)
    await c.close()
    assert [e["id"] for e in rejected] == [ids[1], ids[3]]
    assert ingest.ids == [ids[0], ids[2], ids[4]]
    assert c.stats.rejected == 2


async def test_api_key_is_exchanged_and_renewed_after_401():
    ingest = ScriptedIngest(statuses=[401])
    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        auth_url="http://auth",
        api_key="fk_secret",
        agent_id="bot",
        transport=httpx.MockTransport(ingest),
        max_backoff_s=0.01,
        batch_size=3,
    )
    await record(c, 3)
    await c.close()
    assert ingest.token_requests == 2
    assert len(ingest.ids) == 3


async def test_overflow_policies():
    ingest = ScriptedIngest(statuses=[503] * 1000)
    raising = client(ingest, batch_size=1000, max_buffer=5, overflow="raise", linger_s=10)
    await record(raising, 5)
    with pytest.raises(BufferFull):
        await record(raising, 1)

    dropping = client(
        ScriptedIngest(), batch_size=1000, max_buffer=5, overflow="drop_oldest", linger_s=10
    )
    ids = await record(dropping, 8)
    assert dropping.stats.dropped == 3
    assert [e["id"] for e in dropping._buffer] == ids[3:]
    await dropping.close()

    blocking_ingest = ScriptedIngest()
    blocking = client(blocking_ingest, batch_size=2, max_buffer=2, overflow="block", linger_s=0.01)
    ids = await asyncio.wait_for(record(blocking, 20), timeout=10)
    await blocking.close()
    assert blocking_ingest.ids == ids and blocking.stats.dropped == 0


def test_sync_wrapper_delivers_everything():
    ingest = ScriptedIngest(statuses=[503])
    with FinOpsClient(
        ingest_url="http://ingest",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(ingest),
        max_backoff_s=0.01,
        batch_size=4,
    ) as c:
        ids = [
            c.record_error(
                task_type="qa",
                provider="openai",
                model="gpt-4o",
                kind="rate_limit",
                status_code=429,
                message="slow down",
            )
            for _ in range(6)
        ]
    assert ingest.ids == ids
    assert ingest.batches[0][0]["data"]["error"] == {
        "kind": "rate_limit",
        "message": "slow down",
        "status_code": 429,
    }


async def test_recommend_asks_the_optimizer_and_retries_transient_faults():
    calls = []

    def optimizer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return httpx.Response(
            200, json={"model": "gpt-4o-mini", "recommendation_id": "r1", "propensity": 0.9}
        )

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://opt",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(optimizer),
        max_backoff_s=0.01,
    )
    answer = await c.recommend("summarize", {"input_tokens": 1200}, team="search")
    await c.close()
    assert answer["model"] == "gpt-4o-mini"
    assert len(calls) == 2
    params = dict(calls[-1].url.params)
    assert params == {
        "task_type": "summarize",
        "agent_id": "bot",
        "team": "search",
        "input_tokens": "1200.0",
    }
    assert calls[-1].headers["authorization"] == "Bearer t"
