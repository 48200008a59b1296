"""The SDK's ``call()`` against the real healer (PostgreSQL, Redis, broker): an overloaded
provider is healed by the remedy the healer advises, a bad request is not retried, and the
outcome the SDK reports reaches the healer's learner through the topics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from healer_helpers import TOKENS, healer, settings_for
from support import wait_until

from finops.client import AsyncFinOpsClient
from finops.common.kafka import make_producer
from finops.common.topics import TOPIC_FOR_EVENT_TYPE

pytestmark = pytest.mark.integration


class Platform(httpx.AsyncBaseTransport):
    """The healer app for ``http://healer``; every event ingest would take goes to its topic."""

    def __init__(self, healer_app: Any, producer: Any) -> None:
        self.healer = httpx.ASGITransport(app=healer_app)
        self.producer = producer
        self.events: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            return await self.healer.handle_async_request(request)
        batch = json.loads(await request.aread())
        for event in batch:
            self.events.append(event)
            await self.producer.send_and_wait(
                TOPIC_FOR_EVENT_TYPE[event["type"]],
                json.dumps(event).encode(),
                key=event["data"]["agent_id"].encode(),
            )
        return httpx.Response(202, json={"accepted": len(batch)})


class APIStatusError(Exception):
    """Shaped like the anthropic/openai SDKs' exceptions."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"Error code: {status}")
        self.status_code = status
        self.body = {"type": "error", "error": {"type": error_type, "message": message}}
        self.response = httpx.Response(status, headers={"retry-after": "0"})


async def test_call_heals_an_overloaded_provider_and_the_healer_learns_it(
    infra: Any, tmp_path: Any
) -> None:
    settings = settings_for(infra, tmp_path).model_copy(
        update={
            "effectiveness_checkpoint_name": f"healer-sdk-{uuid.uuid4().hex[:8]}",
            "effectiveness_checkpoint_interval_s": 0.2,
        }
    )
    provider_name = "anthropic"
    calls: list[tuple[str, str]] = []
    failures = [APIStatusError(529, "overloaded_error", "Overloaded")]

    async def llm(*, provider: str, model: str, **params: Any) -> dict[str, Any]:
        calls.append((provider, model))
        if failures:
            raise failures.pop()
        return {"usage": {"input_tokens": 100, "output_tokens": 10}}

    producer = make_producer(settings)
    await producer.start()
    try:
        async with healer(settings) as http:
            app = http.app  # type: ignore[attr-defined]
            platform = Platform(app, producer)
            async with AsyncFinOpsClient(
                agent_id="agent-1",
                token=TOKENS.token("agent-1", role="agent"),
                ingest_url="http://ingest",
                healer_url="http://healer",
                transport=platform,
                linger_s=0.01,
            ) as finops:
                await finops.call(
                    llm, task_type="qa", provider=provider_name, model="claude-sonnet-4-5"
                )

                async def bad(**_: Any) -> None:
                    raise APIStatusError(400, "invalid_request_error", "messages: empty")

                with pytest.raises(APIStatusError) as refused:
                    await finops.call(bad, task_type="qa", provider="openai", model="gpt-4o")
                await finops.flush()
            assert calls == [(provider_name, "claude-sonnet-4-5")] * 2  # retried after the wait
            assert "finops: gave up after 1 attempt(s)" in refused.value.__notes__[0]
            success = next(e for e in platform.events if e["type"] == "agent.llm_call")
            advice_id = success["data"]["remedy"]["advice_id"]
            learner = app.state.outcomes.ledger.learner
            await wait_until(
                lambda: any(
                    t.healed for (k, p, _), t in learner.trials.items()
                    if (k.value, p) == ("overloaded", provider_name)
                ),
                30,
                f"the healed outcome of {advice_id} reached the learner",
            )  # fmt: skip
    finally:
        await producer.stop()
