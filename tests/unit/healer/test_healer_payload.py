from __future__ import annotations

import json

from finops.common.provider_errors.payload import (
    MAX_MESSAGE,
    enrich,
    from_error_data,
    provider_error,
)
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError


def test_openai_body_gives_message_type_and_code() -> None:
    body = {"error": {"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"}}
    error = provider_error(status=429, body=body, provider="openai")
    assert (error.status, error.error_type, error.error_code, error.message) == (
        429,
        "tokens",
        "rate_limit_exceeded",
        "slow down",
    )


def test_anthropic_body_gives_the_inner_error_type() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = provider_error(status=529, body=json.dumps(body).encode())
    assert (error.error_type, error.message) == ("overloaded_error", "Overloaded")


def test_google_body_gives_status_reason_daily_quota_and_retry_delay() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"},
                        {"quotaId": "GenerateRequestsPerDayPerProjectPerModel"},
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "33s"},
            ],
        }
    }
    error = provider_error(body=[body])
    assert (error.status, error.error_type, error.error_code, error.retry_after_ms) == (
        429,
        "RESOURCE_EXHAUSTED",
        "GenerateRequestsPerDayPerProjectPerModel",
        33_000.0,
    )


def test_google_error_info_reason_becomes_the_code() -> None:
    body = {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "API key not valid.",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    assert provider_error(body=body).error_code == "API_KEY_INVALID"


def test_a_body_wrapped_as_a_gateway_message_is_unwrapped() -> None:
    inner = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    outer = {
        "error": {
            "message": json.dumps(inner, indent=2),
            "code": 503,
            "status": "Service Unavailable",
        }
    }
    error = provider_error(body=outer)
    assert (error.message, error.error_type, error.status) == (
        "The model is overloaded.",
        "UNAVAILABLE",
        503,
    )


def test_bedrock_exception_name_comes_from_the_errortype_header() -> None:
    error = provider_error(
        status=429,
        body={"message": "Too many tokens, please wait before trying again."},
        headers={"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"},
    )
    assert error.error_type == "ThrottlingException"
    assert "x-amzn-errortype" in error.headers


def test_boto3_parsed_response_gives_code_status_and_headers() -> None:
    body = {
        "Error": {"Code": "ThrottlingException", "Message": "Too many tokens"},
        "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {"Date": "x"}},
    }
    error = provider_error(body=body)
    assert (error.status, error.error_type, error.message, dict(error.headers)) == (
        429,
        "ThrottlingException",
        "Too many tokens",
        {"date": "x"},
    )


def test_sdk_string_with_a_python_repr_body_is_parsed() -> None:
    message = (
        "Error code: 429 - {'error': {'message': 'You exceeded your current quota.', "
        "'type': 'insufficient_quota', 'param': None, 'code': 'insufficient_quota'}}"
    )
    error = provider_error(message=message)
    assert (error.status, error.error_type, error.error_code, error.message) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota.",
    )


def test_status_and_type_before_an_embedded_body_are_read() -> None:
    message = "429 RESOURCE_EXHAUSTED. {'error': {'message': 'Resource has been exhausted'}}"
    error = provider_error(message=message)
    assert (error.status, error.error_type) == (429, "RESOURCE_EXHAUSTED")


def test_botocore_and_python_exception_names_become_the_type() -> None:
    boto = "An error occurred (ValidationException) when calling the Converse operation: bad"
    assert provider_error(message=boto).error_type == "ValidationException"
    httpx = "httpx.ConnectError: [Errno 111] Connection refused"
    assert provider_error(message=httpx).error_type == "ConnectError"


def test_dotted_exception_paths_name_the_type_whatever_its_suffix() -> None:
    message = "google.api_core.exceptions.ResourceExhausted: 429 You exceeded your current quota."
    error = provider_error(message=message)
    assert (error.error_type, error.status) == ("ResourceExhausted", 429)


def test_a_status_stated_in_the_text_fills_a_missing_status() -> None:
    cases = {
        "MistralAPIStatusException: Cannot stream response. Status: 429": 429,
        "HTTP/1.1 500 model_error": 500,
        "Error: 429 Too Many Requests": 429,
        "402 This request requires more credits": 402,
        "API error occurred: Status 401": 401,
        "Limit 30000, Used 29937, Requested 385": None,
        "maximum context length is 4097 tokens": None,
    }
    assert {text: provider_error(message=text).status for text in cases} == cases
    assert provider_error(message="HTTP/1.1 500 model_error", status=503).status == 503


def test_explicit_arguments_win_over_the_body() -> None:
    body = {"error": {"message": "m", "type": "a", "code": "b"}}
    error = provider_error(status=500, body=body, error_type="x", error_code="y", retry_after_ms=5)
    assert (error.status, error.error_type, error.error_code, error.retry_after_ms) == (
        500,
        "x",
        "y",
        5,
    )


def test_non_json_text_body_is_kept_as_the_message_and_truncated() -> None:
    error = provider_error(status=502, body="<html>" + "x" * 5000)
    assert error.message.startswith("<html>") and len(error.message) == MAX_MESSAGE


def test_unparseable_and_hostile_text_is_kept_as_is() -> None:
    for text in ("{not json", "[" * 5000, "{'a': __import__('os')}"):
        assert provider_error(message=text).message == text[:MAX_MESSAGE]


def test_enrich_leaves_plain_errors_alone_and_fills_only_empty_fields() -> None:
    plain = ProviderError(message="Overloaded", status=529)
    assert enrich(plain) is plain
    embedded = ProviderError(
        message="Error code: 400 - {'error': {'message': 'too long', 'code': 'context_length'}}",
        status=413,
    )
    enriched = enrich(embedded)
    assert (enriched.status, enriched.error_code, enriched.message) == (
        413,
        "context_length",
        "too long",
    )


def test_an_error_event_becomes_a_provider_error_and_a_hint() -> None:
    from finops.common.events import ERROR_KINDS, ErrorData

    data = ErrorData.model_validate(
        {
            "agent_id": "a",
            "task_type": "t",
            "provider": "bedrock",
            "model": "m",
            "error": {
                "kind": "connection",
                "status_code": 429,
                "type": "ThrottlingException",
                "provider_code": "c",
                "message": "Too many tokens",
                "headers": {"Retry-After": "3"},
                "retry_after_ms": 2500,
            },
        }
    )
    reported = from_error_data(data)
    assert reported.error == ProviderError(
        message="Too many tokens",
        status=429,
        provider="bedrock",
        error_type="ThrottlingException",
        error_code="c",
        headers={"retry-after": "3"},
        retry_after_ms=2500,
    )
    assert reported.hint is ErrorKind.NETWORK
    assert {k.value for k in ErrorKind} == set(ERROR_KINDS)
    bare = data.model_copy(update={"error": data.error.model_copy(update={"kind": None})})
    assert from_error_data(bare).hint is None
