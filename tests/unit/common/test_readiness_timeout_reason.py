"""A readiness check that does not answer in time says so on /readyz.

Freezing the broker under a running stack, every service's /readyz answered
``"kafka": "down: TimeoutError: "``: the timeout's message is empty, so an operator read no
reason at all. The answer names the wait instead.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from finops.common import http


async def never() -> None:
    await asyncio.Event().wait()


async def fine() -> None:
    return None


async def test_a_check_that_does_not_answer_in_time_is_down_with_the_wait_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "READY_CHECK_TIMEOUT_S", 0.05, raising=False)
    app = FastAPI()
    http._install_probes(app, "ingest", lambda: {"kafka": never, "redis": fine})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "checks": {"kafka": "down: no answer within 0.05 s", "redis": "ok"},
    }


async def own_timeout() -> None:
    raise TimeoutError  # a pool checkout's or a statement's own timeout, long before the wait's


async def test_a_check_that_times_out_on_its_own_is_not_said_to_have_kept_the_wait() -> None:
    app = FastAPI()
    http._install_probes(app, "ingest", lambda: {"postgres": own_timeout})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"postgres": "down: TimeoutError"}
