"""SDK delivery policy against a scripted transport: batching, retries, rejects, overflow."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from support import QuietHandler, answer_json, loopback_server

from finops.client import (
    AsyncFinOpsClient,
    BufferFull,
    ClientClosed,
    EventsRejected,
    FinOpsClient,
    PlatformUnavailable,
    RequestRefused,
)


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


def client(ingest: Callable[[httpx.Request], httpx.Response], **kwargs) -> AsyncFinOpsClient:
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
        api_key="fo_ak_secret",
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
    assert [e["id"] for e in dropping._queue.buffer] == ids[3:]
    await dropping.close()

    blocking_ingest = ScriptedIngest()
    blocking = client(blocking_ingest, batch_size=2, max_buffer=2, overflow="block", linger_s=0.01)
    ids = await asyncio.wait_for(record(blocking, 20), timeout=10)
    await blocking.close()
    assert blocking_ingest.ids == ids and blocking.stats.dropped == 0


async def test_drops_under_drop_oldest_are_logged_at_the_first_and_every_power_of_two(caplog):
    # they were counted in stats.dropped only: an agent losing events saw nothing in its log
    dropping = client(
        ScriptedIngest(), batch_size=1000, max_buffer=2, overflow="drop_oldest", linger_s=10
    )
    with caplog.at_level(logging.WARNING, logger="finops.client"):
        await record(dropping, 2 + 9)
    said = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert [message.split(": ")[1].split(" dropped")[0] for message in said] == ["1", "2", "4", "8"]
    assert dropping.stats.dropped == 9
    await dropping.close()


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


async def test_record_error_refuses_a_header_given_twice_in_different_cases():
    """Ingest refuses the same header name twice (in any case); the SDK once kept the last."""
    ingest = ScriptedIngest()
    c = client(ingest)
    error: dict[str, Any] = {
        "task_type": "qa",
        "provider": "openai",
        "model": "gpt-4o",
        "status_code": 429,
    }
    with pytest.raises(ValueError) as refused:
        await c.record_error(**error, headers={"Retry-After": "1", "retry-after": "30"})
    assert str(refused.value) == (
        "headers: 'Retry-After' and 'retry-after' are the same header (names are "
        "case-insensitive); give it once"
    )
    assert c.pending == 0
    await c.record_error(**error, headers={"Retry-After": "1", "X-RateLimit-Reset": "2s"})
    await c.close()
    [[event]] = ingest.batches
    assert event["data"]["error"]["headers"] == {"retry-after": "1", "x-ratelimit-reset": "2s"}


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
        "input_tokens": "1200.0",  # a name no parameter has goes as it is
    }
    assert calls[-1].headers["authorization"] == "Bearer t"


async def test_recommend_names_a_feature_that_is_not_a_number():
    # it raised "could not convert string to float: 'abc'", naming no feature
    asked: list[httpx.Request] = []

    def optimizer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(500)

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://opt",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(optimizer),
    )
    with pytest.raises(ValueError, match="feature 'input_tokens' must be a number, not 'abc'"):
        await c.recommend("summarize", {"input_tokens": "abc"})  # type: ignore[dict-item]
    await c.close()
    assert asked == []  # refused before anything is sent


# ---- failing loudly: answers that retrying cannot fix --------------------------------------


def auth_answering(
    status: int,
    body: dict | str,
    ingest: Callable[[httpx.Request], httpx.Response] | None = None,
):
    """A transport whose token endpoint answers ``status``/``body``; counts token requests."""
    seen = {"token_requests": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/token":
            seen["token_requests"] += 1
            if isinstance(body, str):
                return httpx.Response(status, text=body)
            return httpx.Response(status, json=body)
        assert ingest is not None, "no event may be sent without a token"
        return ingest(request)

    return handler, seen


def keyed_client(handler, **kwargs) -> AsyncFinOpsClient:
    return AsyncFinOpsClient(
        ingest_url="http://ingest",
        auth_url="http://auth",
        api_key="fo_ak_wrong",
        agent_id="bot",
        transport=httpx.MockTransport(handler),
        max_backoff_s=0.01,
        **kwargs,
    )


async def test_a_refused_api_key_fails_fast_with_what_to_fix():
    handler, seen = auth_answering(
        401, {"error": {"code": "invalid_client", "message": "unknown or revoked API key"}}
    )
    c = keyed_client(handler, batch_size=2)
    await record(c, 2)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=5)
    assert refused.value.status == 401 and refused.value.code == "invalid_client"
    assert str(refused.value) == (
        "the auth service at http://auth refused the API key (401 invalid_client: unknown or "
        "revoked API key); check api_key: it must be an active key (fo_ak_…) of agent 'bot'"
    )
    assert seen["token_requests"] == 1
    # The client stays failed: the events are kept, new ones are refused with the same error.
    assert c.pending == 2
    with pytest.raises(RequestRefused):
        await record(c, 1)
    with pytest.raises(RequestRefused, match="2 events were not delivered"):
        await c.close()


async def test_a_wrong_auth_url_fails_fast_naming_the_url():
    handler, seen = auth_answering(404, "<html>Not Found</html>")
    c = keyed_client(handler, batch_size=1)
    await record(c, 1)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=5)
    assert str(refused.value) == (
        "http://auth/api/auth/token answered 404 (not a FinOps error answer); "
        "is auth_url the auth service (port 8001 on the local stack by default)?"
    )
    assert seen["token_requests"] == 1
    with pytest.raises(RequestRefused):
        await c.close()


async def test_a_wrong_ingest_url_fails_fast_naming_the_url():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    c = client(handler, batch_size=1)
    await record(c, 1)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=5)
    # the port is only the default: a stack may run its ingest elsewhere (9102, say)
    assert str(refused.value) == (
        "http://ingest/api/events answered 404 (not a FinOps error answer); "
        "is ingest_url the ingest service (port 8002 on the local stack by default)?"
    )
    with pytest.raises(RequestRefused):
        await c.close()


def answering(service: str, answer: httpx.Response) -> AsyncFinOpsClient:
    """A client whose ``service`` (optimizer or experiments) answers every request so."""
    return AsyncFinOpsClient(
        ingest_url="http://ingest",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(lambda request: answer),
        **dict[str, Any]({f"{service}_url": f"http://{service}"}),
    )


@pytest.mark.parametrize(
    ("service", "port", "ask"),
    [
        ("optimizer", 8003, lambda c: c.recommend("qa")),
        ("experiments", 8005, lambda c: c.assign("e1", "user-42")),
    ],
    ids=["optimizer", "experiments"],
)
async def test_a_wrong_optimizer_or_experiments_url_names_the_default_port(service, port, ask):
    """The experiments service had no port to name: a KeyError instead of the refusal."""

    c = answering(service, httpx.Response(404, text="Not Found"))
    with pytest.raises(RequestRefused) as refused:
        await ask(c)
    assert str(refused.value).endswith(
        f"answered 404 (not a FinOps error answer); is {service}_url the {service} service "
        f"(port {port} on the local stack by default)?"
    )
    await c.close()


@pytest.mark.parametrize(
    ("service", "ask"),
    [("optimizer", lambda c: c.recommend("qa")), ("experiments", lambda c: c.assign("e1", "u"))],
    ids=["optimizer", "experiments"],
)
@pytest.mark.parametrize("body", ["<html>a proxy's page</html>", "[1, 2]"], ids=["html", "list"])
async def test_a_200_that_is_not_a_json_object_is_a_refusal_naming_the_url(service, ask, body):
    """A ValueError (or TypeError) escaped where RequestRefused is promised."""

    c = answering(service, httpx.Response(200, text=body))
    with pytest.raises(RequestRefused) as refused:
        await ask(c)
    assert refused.value.status == 200 and refused.value.code is None
    assert "answered 200 with a body that is not a JSON object" in str(refused.value)
    assert f"is {service}_url the {service} service's address?" in str(refused.value)
    await c.close()


async def test_ingest_refusing_a_fresh_token_fails_after_one_renewal():
    refusals = 0

    def ingest(request: httpx.Request) -> httpx.Response:
        nonlocal refusals
        refusals += 1
        return httpx.Response(
            401,
            json={"error": {"code": "invalid_token", "message": "signed with an unknown key"}},
        )

    handler, seen = auth_answering(200, {"access_token": "t", "expires_in": 900}, ingest)
    c = keyed_client(handler, batch_size=1)
    await record(c, 1)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=5)
    assert refused.value.code == "invalid_token"
    assert "refused a fresh token from http://auth" in str(refused.value)
    assert (seen["token_requests"], refusals) == (2, 2)
    with pytest.raises(RequestRefused):
        await c.close()


async def test_a_missing_scope_fails_fast():
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "insufficient_scope", "message": "needs events:write"}}
        return httpx.Response(403, json=body)

    c = client(handler, batch_size=1)
    await record(c, 1)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=5)
    assert (refused.value.status, refused.value.code) == (403, "insufficient_scope")
    with pytest.raises(RequestRefused):
        await c.close()


async def test_rejected_events_raise_on_flush_and_are_logged_by_default(caplog):
    ingest = ScriptedIngest(statuses=[422], reject_indexes=[1, 3])
    c = client(ingest, batch_size=5)
    ids = await record(c, 5)
    with caplog.at_level("ERROR", logger="finops.client"):
        with pytest.raises(EventsRejected) as rejected:
            await c.flush(timeout=5)
    assert [e["id"] for e in rejected.value.events] == [ids[1], ids[3]]
    assert ingest.ids == [ids[0], ids[2], ids[4]]
    expected = "ingest rejected 2 events (422 invalid_events): data.model"
    assert str(rejected.value) == expected
    assert [r.getMessage() for r in caplog.records] == [expected]
    await c.close()  # reported once: closing afterwards does not raise again
    assert c.stats.rejected == 2


@pytest.mark.parametrize("code", ["agent_mismatch", "team_mismatch", "source_mismatch"])
async def test_events_refused_for_their_agent_team_or_source_are_rejected_not_fatal(code):
    delivered: list[dict] = []

    def ingest(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        foreign = [i for i, e in enumerate(batch) if e["data"]["agent_id"] != "bot"]
        if foreign:
            details = [{"index": i, "field": "data.agent_id"} for i in foreign]
            body = {"error": {"code": code, "message": "not yours", "details": details}}
            return httpx.Response(403, json=body)
        delivered.extend(batch)
        return httpx.Response(202, json={"accepted": len(batch)})

    rejected: list[dict] = []
    c = client(ingest, batch_size=3, on_rejected=lambda events, reason: rejected.extend(events))
    ids = [
        await c.record_call(
            task_type="qa",
            provider="openai",
            model="gpt-4o-mini",
            usage={"input_tokens": 1, "output_tokens": 1},
            latency_ms=1,
            agent_id=agent,
        )
        for agent in ("bot", "other", "bot")
    ]
    await c.close()
    assert [e["id"] for e in delivered] == [ids[0], ids[2]]
    assert [e["id"] for e in rejected] == [ids[1]]


async def test_transient_faults_are_logged_as_warnings_with_the_reason(caplog):
    # the platform's code says which of its dependencies failed (the broker, Redis, auth's
    # keys): the warning said "HTTP 503" alone
    broker = {"error": {"code": "broker_unavailable", "message": "the broker did not ack"}}
    answers = [httpx.Response(503, headers={"Retry-After": "0"}, json=broker),
               httpx.Response(502, text="<html>Bad Gateway</html>")]  # fmt: skip

    def ingest(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(202, json={"accepted": 1})

    c = client(ingest, batch_size=1)
    with caplog.at_level("WARNING", logger="finops.client"):
        await record(c, 1)
        await c.flush(timeout=5)
    await c.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split("; retry")[0] for w in warnings] == [
        "delivery to http://ingest failed (HTTP 503 broker_unavailable)",
        "delivery to http://ingest failed (HTTP 502)",
    ]


async def test_recommend_raises_what_the_optimizer_said():
    def optimizer(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "no_arms", "message": "no arm known for task 'qa'"}}
        return httpx.Response(404, json=body)

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://opt",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(optimizer),
    )
    with pytest.raises(RequestRefused) as refused:
        await c.recommend("qa")
    assert (refused.value.status, refused.value.code) == (404, "no_arms")
    assert str(refused.value) == (
        "the optimizer at http://opt: 404 no_arms: no arm known for task 'qa'"
    )
    await c.close()


async def test_recommend_gives_up_on_an_unreachable_optimizer_with_a_clear_error():
    def optimizer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://opt",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(optimizer),
        max_backoff_s=0.01,
    )
    with pytest.raises(PlatformUnavailable) as unavailable:
        await c.recommend("qa")
    assert str(unavailable.value) == (
        "no answer from the optimizer at http://opt after 5 attempts (ConnectError: "
        "connection refused); is it running, and is optimizer_url right?"
    )
    await c.close()


async def test_urls_and_api_key_default_to_the_environment(monkeypatch):
    monkeypatch.setenv("FINOPS_INGEST_URL", "http://ingest.example:9002/")
    monkeypatch.setenv("FINOPS_AUTH_URL", "http://auth.example:9001")
    monkeypatch.setenv("FINOPS_OPTIMIZER_URL", "http://opt.example:9003")
    monkeypatch.setenv("FINOPS_API_KEY", "fo_ak_from_env")
    sent: list[httpx.Request] = []

    def platform(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/api/auth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 900})
        if request.url.path == "/api/recommendations":
            return httpx.Response(200, json={"model": "gpt-4o-mini"})
        return httpx.Response(202, json={"accepted": 1})

    c = AsyncFinOpsClient(agent_id="bot", transport=httpx.MockTransport(platform))
    await c.recommend("qa")
    await record(c, 1)
    await c.close()
    assert [str(r.url).split("?")[0] for r in sent] == [
        "http://auth.example:9001/api/auth/token",
        "http://opt.example:9003/api/recommendations",
        "http://ingest.example:9002/api/events",
    ]
    assert b"client_secret=fo_ak_from_env" in sent[0].content

    for name in ("FINOPS_INGEST_URL", "FINOPS_AUTH_URL", "FINOPS_OPTIMIZER_URL", "FINOPS_API_KEY"):
        monkeypatch.delenv(name)
    local = AsyncFinOpsClient(agent_id="bot", api_key="fo_ak_x")
    assert (local.ingest_url, local.auth_url, local.optimizer_url) == (
        "http://127.0.0.1:8002",
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8003",
    )
    await local.close()
    with pytest.raises(ValueError, match="FINOPS_API_KEY"):
        AsyncFinOpsClient(agent_id="bot")


async def test_a_close_that_times_out_keeps_the_batch_in_flight_pending_and_says_how_many():
    # ingest down for good: close(timeout) gave up with a bare TimeoutError, and the batch
    # being retried vanished with the cancelled sender (pending 0: nothing said it was lost)
    ingest = ScriptedIngest(statuses=[503] * 100_000)
    c = client(ingest, batch_size=2)
    await record(c, 3)
    with pytest.raises(TimeoutError) as raised:
        await c.close(timeout=0.2)
    assert str(raised.value) == "3 events were not delivered to http://ingest within 0.2 s"
    assert c.pending == 3
    assert ingest.batches == []


async def test_a_flush_that_times_out_says_how_many_are_still_being_retried():
    # it raised a bare TimeoutError: no message, nothing said what was left or where
    ingest = ScriptedIngest(statuses=[503] * 100_000)
    c = client(ingest, batch_size=2)
    await record(c, 3)
    with pytest.raises(TimeoutError) as raised:
        await c.flush(timeout=0.2)
    assert str(raised.value) == (
        "3 events not delivered to http://ingest within 0.2 s; still retrying them (flush() "
        "again, or close() to deliver them or say what was lost)"
    )
    assert c.pending == 3
    ingest.statuses.clear()
    await c.close()
    assert len(ingest.ids) == 3


def test_a_blocking_client_never_closed_delivers_what_is_pending_when_collected(caplog):
    # the program forgot close(): the pending events died with the daemon thread, silently
    import gc

    ingest = ScriptedIngest()
    c = FinOpsClient(
        ingest_url="http://ingest",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(ingest),
        linger_s=60.0,
    )
    thread = c._thread
    event_id = c.record_call(
        task_type="qa", provider="openai", model="gpt-4o-mini", usage={}, latency_ms=1
    )
    assert ingest.ids == []
    del c
    gc.collect()
    assert ingest.ids == [event_id]
    thread.join(5)
    assert not thread.is_alive()
    assert "the client was never closed: delivering 1 pending events" in caplog.text


def test_an_async_client_whose_loop_ends_before_close_says_what_was_not_delivered(caplog):
    ingest = ScriptedIngest(statuses=[503] * 100_000)
    pending: list[int] = []

    async def forgets_close() -> None:
        c = client(ingest)
        await record(c, 2)
        pending.append(c.pending)

    asyncio.run(forgets_close())
    assert pending == [2]
    assert (
        "event delivery cancelled before close() (the event loop ended?): 2 events were not "
        "delivered" in caplog.text
    )


async def test_a_flush_after_a_close_that_timed_out_says_what_was_not_delivered():
    # it waited for ever: the batch put back stayed pending, and no sender was left to send it
    ingest = ScriptedIngest(statuses=[503] * 100_000)
    c = client(ingest, batch_size=2)
    await record(c, 3)
    with pytest.raises(TimeoutError):
        await c.close(timeout=0.2)
    with pytest.raises(ClientClosed) as raised:
        await asyncio.wait_for(c.flush(), 10)
    assert str(raised.value) == "the client is closed: 3 events were not delivered"


async def test_a_batch_put_back_after_an_unexpected_failure_is_counted_once():
    # pending counted it twice while the sender waited to try again: in the buffer and in flight
    def broken(request: httpx.Request) -> httpx.Response:
        raise ValueError("a bug in a transport")

    c = client(broken)
    await record(c, 1)
    with pytest.raises(TimeoutError) as raised:
        await c.close(timeout=0.3)  # the sender waits 1 s after such a failure
    assert str(raised.value) == "1 event was not delivered to http://ingest within 0.3 s"
    assert c.pending == 1


#: a program that records one event and ends without closing its client (``sys.argv``: the
#: ingest URL; ``fork`` as a second argument: it forks first, and the child ends at once)
UNCLOSED_PROGRAM = """
import logging, os, sys
from finops.client import FinOpsClient
logging.basicConfig(level=logging.INFO, format="%(message)s")
c = FinOpsClient(ingest_url=sys.argv[1], agent_id="bot", token="t", linger_s=60.0)
print(c.record_call(task_type="qa", provider="openai", model="m", usage={}, latency_ms=1))
sys.stdout.flush()
if sys.argv[2:] == ["fork"]:
    child = os.fork()
    if child == 0:
        sys.exit(0)  # the child's exit: the parent's events are not its to deliver
    os.waitpid(child, 0)
    print("child done")
"""


class RecordingIngest(QuietHandler):
    """Ingest over real HTTP: 202 to every batch, its ids kept in ``ids``."""

    ids: list[str] = []

    def do_POST(self) -> None:  # http.server calls it by this name
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).ids.extend(e["id"] for e in batch)
        answer_json(self, 202, json.dumps({"accepted": len(batch)}).encode())


@pytest.mark.parametrize("fork", [False, True], ids=["plain", "forked-child"])
def test_a_client_never_closed_delivers_at_exit_to_an_ingest_named_by_host_name(fork):
    # at exit the loop could no longer resolve a host name (the thread pools were shut down
    # first): each try failed, and after 10 s the events were lost; a forked child that ended
    # waited 15 s for the parent's thread, which it does not have
    RecordingIngest.ids = []
    with loopback_server(RecordingIngest) as url:
        url = url.replace("127.0.0.1", "localhost")  # a host name, to be resolved at exit
        args = [url, "fork"] if fork else [url]
        done = subprocess.run(
            [sys.executable, "-c", UNCLOSED_PROGRAM, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    event_id = done.stdout.split()[0]
    assert RecordingIngest.ids == [event_id]  # once: the forked child delivered nothing
    assert "the client was never closed: delivering 1 pending events" in done.stderr
    assert "Traceback" not in done.stderr
    assert "closing a client that was never closed" not in done.stderr


class Opaque:
    """A value JSON cannot carry (a provider SDK's object, a numpy scalar...)."""


CALL: dict[str, Any] = {"task_type": "qa", "provider": "openai", "model": "gpt-4o-mini",
        "usage": {"input_tokens": 10, "output_tokens": 2}, "latency_ms": 100}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"quality": __import__("decimal").Decimal("0.9")}, "data.quality: Decimal('0.9')"),
        ({"usage": {"input_tokens": 10, "details": Opaque()}}, "data.usage.details: <"),
        ({"config": {"stop": ["a", b"b"]}}, "data.config.stop[1]: b'b'"),
        ({"features": {("x", 1): 1.0}}, "data.features: the key ('x', 1)"),
    ],
)
async def test_a_value_json_cannot_carry_is_refused_when_recorded_and_the_rest_delivered(
    change: dict, named: str
) -> None:
    # The event was queued; its batch then failed to encode at every send ("unexpected
    # delivery failure; events requeued", once a second), so close() never returned and the
    # good events of its batch were never delivered either.
    ingest = ScriptedIngest()
    c = client(ingest)
    good = await c.record_call(**CALL)
    with pytest.raises(ValueError) as refused:
        await c.record_call(**{**CALL, **change})
    assert str(refused.value).startswith(named) and "JSON" in str(refused.value)
    await asyncio.wait_for(c.close(), 60)  # a guard: it never returned
    assert ingest.ids == [good] and c.stats.recorded == 1 and c.pending == 0


@pytest.mark.parametrize(
    ("ask", "service"),
    [
        (lambda c: c.recommend("qa"), "the optimizer at http://opt"),
        (lambda c: c.assign("e1", "u1"), "the experiments service at http://exp"),
    ],
)
async def test_an_unreachable_auth_is_named_when_a_question_gets_no_answer(ask, service):
    # The optimizer and the experiments service were up; the API key's exchange at auth
    # failed. The error blamed the service asked ("is it running, and is optimizer_url
    # right?"), so the agent checked the wrong address.
    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            raise httpx.ConnectError("connection refused", request=request)
        raise AssertionError(f"asked {request.url} without a token")

    c = AsyncFinOpsClient(
        ingest_url="http://ingest", auth_url="http://auth", optimizer_url="http://opt",
        experiments_url="http://exp", agent_id="bot", api_key="fo_ak_x",
        transport=httpx.MockTransport(platform), max_backoff_s=0.01,
    )  # fmt: skip
    with pytest.raises(PlatformUnavailable) as unavailable:
        await ask(c)
    assert str(unavailable.value) == (
        f"no token from the auth service at http://auth to ask {service}, after 5 attempts "
        "(ConnectError: connection refused); is auth running, and is auth_url right?"
    )
    await c.close()


async def test_an_on_rejected_callback_that_raises_neither_stalls_delivery_nor_loses_events(
    caplog,
):
    # The callback's exception escaped the sender, which put the whole batch back and sent
    # it again, once a second, for ever: the good events were never delivered, close()
    # never returned.
    delivered: list[dict] = []

    def ingest(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        bad = [i for i, e in enumerate(batch) if e["data"]["model"] == "bad"]
        if bad:
            details = [{"index": i, "field": "data.model", "message": "unknown"} for i in bad]
            error = {"code": "invalid_events", "message": "invalid events", "details": details}
            return httpx.Response(422, json={"error": error})
        delivered.extend(batch)
        return httpx.Response(202, json={"accepted": len(batch)})

    def on_rejected(events: list[dict], reason: object) -> None:
        raise RuntimeError("the agent's callback failed")

    c = client(ingest, on_rejected=on_rejected)
    good = await record(c, 1)
    bad = await c.record_call(**{**CALL, "model": "bad"})
    good += await record(c, 1)
    with pytest.raises(EventsRejected) as rejected:
        await asyncio.wait_for(c.close(), 60)  # a guard: it never returned
    assert [e["id"] for e in delivered] == good
    assert [e["id"] for e in rejected.value.events] == [bad]
    assert "on_rejected raised" in caplog.text and "the agent's callback failed" in caplog.text


async def test_a_token_of_a_short_lifetime_is_used_before_it_is_renewed():
    # Auth may issue API-key tokens of 30 s (FINOPS_API_KEY_TOKEN_TTL_SECONDS >= 30); renewed
    # 30 s before its expiry, such a token was stale at once: every batch and every question
    # exchanged the key again (an API-key check at auth each time).
    ingest = ScriptedIngest()

    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/token":
            ingest.token_requests += 1
            return httpx.Response(200, json={"access_token": "t", "expires_in": 30})
        return ingest(request)

    c = client(platform, token=None, api_key="fo_ak_x", auth_url="http://auth")
    now = [1000.0]
    c._tokens.clock = lambda: now[0]
    for at in (1000.0, 1010.0, 1014.9):  # used until half its lifetime has passed
        now[0] = at
        await record(c, 1)
        await c.flush()
    assert (ingest.token_requests, len(ingest.batches)) == (1, 3)
    now[0] = 1015.0  # then renewed
    await record(c, 1)
    await c.close()
    assert (ingest.token_requests, len(ingest.batches)) == (2, 4)


def test_a_blocking_client_used_after_close_raises_client_closed():
    # It waited for ever: the call went to the client's event loop, stopped by close().
    ingest = ScriptedIngest()
    llm_calls: list[dict] = []

    def llm(**arguments: object) -> dict:
        llm_calls.append(arguments)
        return {"text": "ok"}

    with FinOpsClient(
        ingest_url="http://ingest", agent_id="bot", token="t",
        transport=httpx.MockTransport(ingest),
    ) as c:  # fmt: skip
        c.record_call(**CALL)
    asked = {
        "record_call": lambda: c.record_call(**CALL),
        "flush": c.flush,
        "recommend": lambda: c.recommend("qa"),
        "call": lambda: c.call(llm, task_type="qa", provider="p", model="m"),
    }
    for name, ask in asked.items():
        answer: queue.Queue[BaseException | None] = queue.Queue()

        def run(ask=ask, answer=answer) -> None:
            try:
                ask()
                answer.put(None)
            except BaseException as exc:
                answer.put(exc)

        threading.Thread(target=run, daemon=True).start()
        raised = answer.get(timeout=30)  # a guard: it never returned
        assert isinstance(raised, ClientClosed), (name, raised)
        assert str(raised).startswith("the client is closed"), name
    assert len(ingest.ids) == 1 and llm_calls == []  # refused before the agent's call ran


async def test_a_call_or_a_question_after_close_raises_client_closed():
    c = client(ScriptedIngest())
    await c.close()
    llm_calls: list[dict] = []
    with pytest.raises(ClientClosed, match="the client is closed"):
        await c.call(lambda **a: llm_calls.append(a), task_type="qa", provider="p", model="m")
    assert llm_calls == []  # it ran (and was paid for), then its report raised
    # httpx's RuntimeError "Cannot send a request, as the client has been closed"
    with pytest.raises(ClientClosed, match="the client is closed"):
        await c.recommend("qa")
    with pytest.raises(ClientClosed, match="the client is closed"):
        await c.assign("e1", "u1")


def test_a_blocking_client_whose_arguments_are_refused_leaves_no_thread(monkeypatch):
    # its event loop's thread was started first and ran on, one more per attempt
    monkeypatch.delenv("FINOPS_API_KEY", raising=False)

    def loops() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "finops-client"]

    before = loops()
    for _ in range(3):
        with pytest.raises(ValueError, match="give an api_key"):
            FinOpsClient(agent_id="bot")
        with pytest.raises(ValueError, match="unknown overflow policy"):
            FinOpsClient(agent_id="bot", token="t", overflow="drop")  # type: ignore[arg-type]
    assert [t for t in loops() if t not in before] == []


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("batch_size", 0),  # the sender spun on empty batches, holding the event loop for ever
        ("max_buffer", 0),  # record_* waited for room for ever (or IndexError: drop_oldest)
        ("linger_s", -1.0),
        ("request_timeout_s", 0),  # every request timed out at once, retried for ever
        ("max_backoff_s", -1.0),
        ("max_backoff_s", float("inf")),  # a wait of inf s
        ("batch_size", 2.5),
        ("max_buffer", float("nan")),
    ],
)
async def test_a_setting_out_of_range_is_refused_naming_it(argument, value):
    with pytest.raises(ValueError, match=f"^{argument} must be .*, not {re.escape(repr(value))}$"):
        AsyncFinOpsClient(agent_id="bot", token="t", **{argument: value})


@pytest.mark.parametrize(
    "setting",
    [
        # refused since 0c5104a, taken at f0e76da
        {"max_buffer": 1e6},
        {"max_buffer": math.inf},  # unbounded
        {"max_buffer": np.int64(1000), "batch_size": np.int64(2)},
        {"batch_size": 2.0},
        {"request_timeout_s": None},  # httpx: no timeout
        {"request_timeout_s": httpx.Timeout(5)},
        {"max_backoff_s": 0},
    ],
)
async def test_an_unusual_setting_that_works_is_taken_and_delivers(setting):
    ingest = ScriptedIngest(statuses=[503])
    c = AsyncFinOpsClient(
        ingest_url="http://ingest", agent_id="bot", token="static",
        transport=httpx.MockTransport(ingest), **{"max_backoff_s": 0.01, **setting},
    )  # fmt: skip
    ids = await record(c, 3)
    await asyncio.wait_for(c.close(), 60)
    assert ingest.ids == ids and c.pending == 0
