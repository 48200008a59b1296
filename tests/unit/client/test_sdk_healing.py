"""``call()``: the SDK reads provider exceptions, reports them, asks the healer and applies
its remedy (fakes: a scripted healer and ingest behind one mock transport)."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from finops.client import AsyncFinOpsClient, FinOpsClient
from finops.client._healing import read_failure


class APIStatusError(Exception):
    """Shaped like the openai/anthropic SDKs' exceptions."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"Error code: {status}")
        self.status_code = status
        self.body = body
        self.response = httpx.Response(status, headers=headers or {})


class APITimeoutError(Exception):
    pass


class Platform:
    """Ingest that keeps every event and a healer that answers the scripted advice in turn
    (``None``: the healer is down)."""

    def __init__(self, advice: list[dict[str, Any] | None]) -> None:
        self.advice = advice
        self.asked: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            self.asked.append(json.loads(request.content))
            answer = self.advice.pop(0)
            if answer is None:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200, json=answer)
        self.events.extend(json.loads(request.content))
        return httpx.Response(202, json={"accepted": 1})

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == event_type]


def advice(action: str, advice_id: str = "adv-1", **remedy: Any) -> dict[str, Any]:
    return {
        "advice_id": advice_id,
        "kind": "overloaded",
        "retryable": True,
        "remedy": {"action": action, "delay_ms": 1, "model": None, "provider": None,
                   "max_input_tokens": None, "params": {}, **remedy},
        "reason": f"because {action}",
        "breaker": None,
    }  # fmt: skip


def sdk(platform: Platform) -> AsyncFinOpsClient:
    return AsyncFinOpsClient(
        agent_id="bot",
        token="static",
        ingest_url="http://ingest",
        healer_url="http://healer",
        transport=httpx.MockTransport(platform),
        max_backoff_s=0.01,
    )


class Provider:
    """An LLM call that fails with the given exceptions in turn, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> Any:
        self.calls.append(arguments)
        if self.failures:
            raise self.failures.pop(0)
        return {"text": "ok", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}


OVERLOADED = APIStatusError(
    529,
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {
        "retry-after": "0.001",
        "x-request-id": "req_1",
        "anthropic-ratelimit-requests-remaining": "0",
    },
)


async def test_a_fallback_switches_model_and_the_success_names_the_advice() -> None:
    platform = Platform([advice("fallback", provider="openai", model="gpt-4o")])
    provider = Provider(OVERLOADED)
    async with sdk(platform) as finops:
        result = await finops.call(
            provider, task_type="qa", provider="anthropic", model="claude-sonnet-4-5"
        )
    assert result["text"] == "ok"
    assert [(c["provider"], c["model"]) for c in provider.calls] == [
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "gpt-4o"),
    ]
    (error,) = platform.of_type("agent.error")
    assert error["error"]["status_code"] == 529 and error["error"]["type"] == "overloaded_error"
    assert error["error"]["headers"] == {
        "retry-after": "0.001",
        "anthropic-ratelimit-requests-remaining": "0",
    }  # only the headers a remedy reads
    assert "kind" not in error["error"] and platform.asked == [error]
    (success,) = platform.of_type("agent.llm_call")
    assert (success["provider"], success["model"], success["remedy"]) == (
        "openai",
        "gpt-4o",
        {"advice_id": "adv-1"},
    )
    assert success["usage"] == {"prompt_tokens": 12, "completion_tokens": 3}


async def test_a_second_failure_names_the_advice_it_followed() -> None:
    platform = Platform([advice("retry", "adv-1"), advice("wait", "adv-2")])
    provider = Provider(OVERLOADED, OVERLOADED)
    async with sdk(platform) as finops:
        await finops.call(provider, task_type="qa", provider="anthropic", model="claude")
    first, second = platform.of_type("agent.error")
    assert ("remedy" not in first, second["remedy"], second["attempt"]) == (
        True,
        {"advice_id": "adv-1"},
        2,
    )
    assert platform.of_type("agent.llm_call")[0]["remedy"] == {"advice_id": "adv-2"}
    assert len(provider.calls) == 3


JSON_MODE = {"type": "json_object"}


async def test_repair_merges_params_and_trim_calls_the_agents_hook() -> None:
    platform = Platform(
        [
            advice("repair", "a1", params={"temperature": 0.0, "response_format": JSON_MODE}),
            advice("trim", "a2", max_input_tokens=1000),
        ]
    )  # fmt: skip
    provider = Provider(APIStatusError(500, {}), APIStatusError(400, {}))
    trimmed: list[int] = []

    async def trim(budget: int) -> None:
        trimmed.append(budget)

    async with sdk(platform) as finops:
        await finops.call(
            provider, task_type="qa", provider="openai", model="gpt-4o",
            params={"temperature": 0.9}, trim=trim, input_tokens=5000,
        )  # fmt: skip
    assert provider.calls[1]["temperature"] == 0.0
    assert provider.calls[1]["response_format"] == {"type": "json_object"}
    assert trimmed == [1000]
    assert platform.asked[1]["request"] == {"input_tokens": 5000}


async def test_an_abort_raises_the_providers_exception_with_the_reason() -> None:
    platform = Platform([advice("abort")])
    provider = Provider(APIStatusError(401, {"error": {"code": "invalid_api_key"}}))
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError) as raised:
            await finops.call(provider, task_type="qa", provider="openai", model="gpt-4o")
    assert raised.value.__notes__ == ["finops: gave up after 1 attempt(s): because abort"]
    assert platform.of_type("agent.llm_call") == [] and len(provider.calls) == 1
    assert platform.asked[0]["error"]["provider_code"] == "invalid_api_key"


async def test_a_trim_without_a_hook_gives_up() -> None:
    platform = Platform([advice("trim", max_input_tokens=10)])
    provider = Provider(APIStatusError(400, {}))
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError):
            await finops.call(provider, task_type="qa", provider="openai", model="gpt-4o")
    assert len(provider.calls) == 1


async def test_without_the_healer_transient_failures_back_off_and_others_raise() -> None:
    platform = Platform([None, None, None])
    transient = Provider(APIStatusError(503, {}), APITimeoutError("Request timed out."))
    refused = Provider(APIStatusError(400, {"error": {"message": "bad"}}))
    async with sdk(platform) as finops:
        assert (await finops.call(transient, task_type="qa", provider="p", model="m"))["text"]
        with pytest.raises(APIStatusError):
            await finops.call(refused, task_type="qa", provider="p", model="m")
    assert (len(transient.calls), len(refused.calls)) == (3, 1)
    timeout_error = platform.of_type("agent.error")[1]["error"]
    assert timeout_error["kind"] == "timeout" and "APITimeoutError" in timeout_error["message"]
    assert "remedy" not in platform.of_type("agent.llm_call")[0]


async def test_the_attempt_budget_ends_the_call() -> None:
    platform = Platform([advice("retry", f"a{i}") for i in range(3)])
    provider = Provider(*[APIStatusError(503, {}) for _ in range(5)])
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError) as raised:
            await finops.call(provider, task_type="qa", provider="p", model="m", max_attempts=3)
    assert len(provider.calls) == 3 and len(platform.asked) == 2
    assert "3 attempts made" in raised.value.__notes__[0]


async def test_the_time_budget_ends_the_call_before_a_long_wait() -> None:
    platform = Platform([advice("wait", delay_ms=60_000)])
    provider = Provider(APIStatusError(429, {}))
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError) as raised:
            await finops.call(provider, task_type="qa", provider="p", model="m", budget_s=5)
    assert "time budget" in raised.value.__notes__[0] and len(provider.calls) == 1


def test_the_blocking_twin_heals_a_blocking_call() -> None:
    platform = Platform([advice("fallback", provider="azure", model="gpt-4o")])
    provider = Provider(OVERLOADED)
    with FinOpsClient(
        agent_id="bot",
        token="static",
        ingest_url="http://ingest",
        healer_url="http://healer",
        transport=httpx.MockTransport(platform),
    ) as finops:
        result = finops.call(provider, task_type="qa", provider="anthropic", model="claude")
    assert result["text"] == "ok" and provider.calls[1]["provider"] == "azure"
    assert platform.of_type("agent.llm_call")[0]["remedy"] == {"advice_id": "adv-1"}


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "headers"),
    [
        (
            httpx.HTTPStatusError(
                "429", request=httpx.Request("POST", "http://x"),
                response=httpx.Response(429, headers={"Retry-After": "3", "Server": "x"},
                                        json={"error": {"type": "rate_limit_error"}}),
            ),
            429, "rate_limit_error", {"retry-after": "3"},
        ),
        (
            {"status": 503, "message": "UNAVAILABLE",
             "headers": {"x-ratelimit-reset-tokens": "6ms"},
             "body": {"error": {"status": "UNAVAILABLE", "code": 503}}},
            503, "UNAVAILABLE", {"x-ratelimit-reset-tokens": "6ms"},
        ),
    ],
)  # fmt: skip
def test_status_type_and_headers_are_read_duck_typed(
    exc: Any, status: int, error_type: str, headers: dict[str, str]
) -> None:
    failure = read_failure(exc)
    assert (failure.status, failure.error_type, failure.headers) == (status, error_type, headers)
    assert failure.transient


async def test_record_error_takes_no_kind_and_sends_type_and_headers() -> None:
    platform = Platform([])
    async with sdk(platform) as finops:
        await finops.record_error(
            task_type="qa", provider="openai", model="gpt-4o", message="slow down",
            status_code=429, error_type="rate_limit_exceeded", headers={"Retry-After": "2"},
        )  # fmt: skip
    (error,) = platform.of_type("agent.error")
    assert error["error"] == {
        "message": "slow down",
        "status_code": 429,
        "type": "rate_limit_exceeded",
        "headers": {"retry-after": "2"},
    }


async def test_a_provider_code_holding_a_control_character_is_left_out_not_raised() -> None:
    """A provider whose error body said `"code": "quota\\texceeded"` turned the agent's 429
    into the SDK's ValueError (the code was copied into the error report, a name the SDK
    refuses): the provider's exception was hidden and the call not healed. Such a type or
    code is now left out of the report, as one too long is; the message keeps the body."""
    quota = APIStatusError(
        429, {"error": {"type": "rate\nlimit", "code": "quota\texceeded", "message": "slow"}}
    )
    failure = read_failure(quota)
    assert (failure.status, failure.error_type, failure.provider_code) == (429, None, None)
    assert "quota\\texceeded" in failure.message
    platform = Platform([advice("retry")])
    provider = Provider(quota)
    async with sdk(platform) as finops:
        result = await finops.call(provider, task_type="qa", provider="openai", model="gpt-4o")
    assert result["text"] == "ok" and len(provider.calls) == 2
    (error,) = platform.of_type("agent.error")
    assert error["error"]["status_code"] == 429
    assert "type" not in error["error"] and "provider_code" not in error["error"]


def test_a_provider_type_with_a_control_character_is_read_from_its_status_instead() -> None:
    failure = read_failure(
        {
            "status": 503,
            "message": "down",
            "body": {"error": {"type": "x\x85", "status": "UNAVAILABLE"}},
        }
    )
    assert failure.error_type == "UNAVAILABLE"


class ForeignHealer(Platform):
    """``healer_url`` leads to a server that answers 200 with something that is not advice
    (a proxy's page, another service, a healer that lost a field)."""

    def __init__(self, answer: httpx.Response) -> None:
        super().__init__([])
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            self.asked.append(json.loads(request.content))
            return self.answer
        return super().__call__(request)


NOT_ADVICE = [
    httpx.Response(200, text="<html>Sign in to the proxy</html>"),
    httpx.Response(200, json={"status": "ok"}),
    httpx.Response(200, json=[advice("retry")]),
    httpx.Response(200, json={**advice("fallback"), "advice_id": None}),
    httpx.Response(200, json=advice("fallback")),  # no model to fall back to
    httpx.Response(200, json=advice("trim", max_input_tokens="many")),
    # json.loads reads Infinity and NaN: int(inf) raised OverflowError out of call()
    httpx.Response(200, content=json.dumps(advice("trim", max_input_tokens=math.inf)).encode()),
    httpx.Response(200, content=json.dumps(advice("wait", delay_ms=math.nan)).encode()),
    httpx.Response(200, json=advice("wait", delay_ms="soon")),
    httpx.Response(200, json=advice("repair", params=["temperature"])),
    httpx.Response(200, json={**advice("retry"), "remedy": {"action": 3}}),
]


@pytest.mark.parametrize("answer", NOT_ADVICE, ids=range(len(NOT_ADVICE)))
async def test_a_healer_answer_that_is_not_advice_is_no_advice(
    answer: httpx.Response, caplog: pytest.LogCaptureFixture
) -> None:
    # It raised the SDK's KeyError or JSONDecodeError out of call() in place of the
    # provider's exception (or half-applied the advice): the healer's absence must never
    # break the agent's call, and an answer that is not advice is no advice (plain backoff).
    platform = ForeignHealer(answer)
    transient = Provider(APIStatusError(503, {}))
    refused = Provider(APIStatusError(400, {"error": {"message": "bad"}}))
    async with sdk(platform) as finops:
        assert (await finops.call(transient, task_type="qa", provider="p", model="m"))["text"]
        with pytest.raises(APIStatusError) as raised:
            await finops.call(refused, task_type="qa", provider="p", model="m")
    assert [c["model"] for c in transient.calls] == ["m", "m"]
    assert "not retryable and the healer is unreachable" in raised.value.__notes__[0]
    assert len(platform.asked) == 2 and "remedy" not in platform.of_type("agent.llm_call")[0]
    assert "is not advice" in caplog.text


async def test_a_trim_advice_without_a_reason_is_followed() -> None:
    # advice_fault took it as advice, then apply() read advice["reason"]: a KeyError out of
    # call() in place of the provider's exception
    answer = advice("trim", max_input_tokens=1000)
    del answer["reason"]
    platform = Platform([answer])
    trimmed: list[int] = []
    async with sdk(platform) as finops:
        result = await finops.call(
            Provider(APIStatusError(400, {"error": {"message": "too long"}})),
            task_type="qa", provider="p", model="m", trim=trimmed.append,
        )  # fmt: skip
    assert result["text"] == "ok" and trimmed == [1000]


def test_a_bedrock_error_from_boto3_gives_its_status_code_and_headers() -> None:
    """botocore's ClientError keeps what the healer reads in a dict (``.response``), not in
    attributes: read as a bare message, a Bedrock throttle reached the healer and the
    optimizer with no status and no type."""
    from botocore.exceptions import ClientError

    throttled = ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Too many requests"},
            "ResponseMetadata": {
                "HTTPStatusCode": 429,
                "HTTPHeaders": {"x-amzn-errortype": "ThrottlingException:http://internal"},
            },
        },
        "InvokeModel",
    )
    failure = read_failure(throttled)
    assert (failure.status, failure.error_type) == (429, "ThrottlingException")
    assert failure.headers == {"x-amzn-errortype": "ThrottlingException:http://internal"}
    assert "Too many requests" in failure.message
    assert failure.transient


def test_a_bedrock_stream_error_with_no_status_is_retried_by_its_code() -> None:
    """An error of Bedrock's response stream (botocore's EventStreamError) has its code and no
    HTTP status: a throttle is still worth a plain retry when the healer cannot be asked; a
    validation error is not."""
    from botocore.exceptions import EventStreamError

    def stream_error(code: str) -> EventStreamError:
        return EventStreamError({"Error": {"Code": code, "Message": "m"}}, "InvokeModelStream")

    throttled = read_failure(stream_error("throttlingException"))
    assert (throttled.status, throttled.error_type, throttled.transient) == (
        None,
        "throttlingException",
        True,
    )
    assert read_failure(stream_error("validationException")).transient is False
