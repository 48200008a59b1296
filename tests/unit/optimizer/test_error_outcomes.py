"""Which failed calls the optimizer learns as quality-0 outcomes of their arm: all but the
provider's passing unavailability, which the healer's breakers count (the kinds of
``PROVIDER_FAULT_KINDS``, read by the healer's rules: ``classify_by_rules``)."""

from __future__ import annotations

import pytest

from finops.common.events.schemas.error_data import ErrorInfo
from finops.optimizer.domain.error_outcomes import says_about_quality

# (what the agent reported, learned as a quality-0 outcome?): the simulation's faults as its
# providers raise them (libs/cli/.../simulation/providers.py), real providers' codes, and
# what the SDK sends of an exception it cannot read
CASES = [
    # passing: rate limits, overload, server errors, timeouts, the network
    ({"status_code": 429, "provider_code": "rate_limit_exceeded"}, False),
    ({"status_code": 503, "provider_code": "overloaded_error"}, False),
    ({"status_code": 500, "provider_code": "server_error"}, False),
    ({"status_code": 529, "type": "overloaded_error"}, False),
    ({"status_code": 500}, False),
    ({"status_code": 504}, False),
    ({"status_code": 408}, False),
    ({"status_code": 429}, False),
    ({"kind": "timeout"}, False),
    ({"kind": "network"}, False),
    ({"type": "ThrottlingException"}, False),
    ({"type": "ServiceUnavailableException"}, False),
    ({"status_code": 429, "type": "RESOURCE_EXHAUSTED"}, False),
    # the arm's own: its answer, its window, the model, the account's quota or credentials
    ({"status_code": 500, "provider_code": "model_error"}, True),
    ({"kind": "invalid_output", "status_code": 500}, True),
    ({"status_code": 400, "provider_code": "invalid_prompt"}, True),
    ({"status_code": 400, "provider_code": "content_filter"}, True),
    ({"status_code": 400, "provider_code": "context_length_exceeded"}, True),
    ({"status_code": 413, "type": "request_too_large"}, True),
    ({"kind": "context_length_exceeded"}, True),
    ({"status_code": 404, "type": "invalid_request_error"}, True),
    ({"status_code": 429, "provider_code": "insufficient_quota"}, True),
    ({"status_code": 402}, True),
    ({"status_code": 401, "type": "authentication_error"}, True),
    ({"status_code": 403, "type": "permission_error"}, True),
    ({"status_code": 400, "type": "invalid_request_error"}, True),
    ({"type": "ValidationException"}, True),
    ({}, True),  # only a message: an answer the SDK could not parse, say
    ({"kind": "unknown"}, True),
    # the provider's codes win over the agent's hint, as in the healer's classifier
    ({"kind": "rate_limit", "provider_code": "model_error"}, True),
    ({"kind": "invalid_output", "provider_code": "rate_limit_exceeded"}, False),
    ({"kind": "rate_limit"}, False),
]


@pytest.mark.parametrize(("reported", "learned"), CASES)
def test_all_but_passing_unavailability_are_quality_outcomes(reported: dict, learned: bool) -> None:
    assert says_about_quality(ErrorInfo(message="failed", **reported)) is learned


BOTOCORE = "An error occurred ({}) when calling the InvokeModel operation: {}"
OPENAI_TPM = (
    "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 45000. The "
    "input or output tokens must be reduced in order to run successfully."
)
# https://github.com/assafelovic/gpt-researcher/issues/985
GROQ_TPM = (
    "Request too large for model `llama-3.1-70b-versatile` in organization "
    "`org_01hw8f0aa0ekmrn70ffm2zkdv1` on tokens per minute (TPM): Limit 6000, Requested 14368, "
    "please reduce your message size and try again. Visit "
    "https://console.groq.com/docs/rate-limits for more information."
)
# https://github.com/cottongeeks/podscript/issues/20: Groq's wording since its service tiers
GROQ_TPM_TIER = (
    "Request too large for model `llama-3.3-70b-versatile` in organization "
    "`org_01j2g5d88hfvjrgw64hnapqk8y` service tier `on_demand` on tokens per minute (TPM): "
    "Limit 6000, Requested 10338, please reduce your message size and try again. Visit "
    "https://console.groq.com/docs/rate-limits for more information."
)
GEMINI_LIMIT_ZERO = (
    "You exceeded your current quota, please check your plan and billing details.\n* Quota "
    "exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
    "limit: 0, model: gemini-2.5-pro\nPlease retry in 20.04466179s."
)
EMBEDDED_QUOTA = (
    "Error code: 429 - {'error': {'code': 'insufficient_quota', 'message': 'You exceeded your "
    "current quota, please check your plan and billing details.', 'param': None, "
    "'type': 'insufficient_quota'}}"
)

# (provider, what the agent reported, learned?): real payloads on which the optimizer's former
# word list and the healer disagreed; the verdict is the healer's (its kind in
# PROVIDER_FAULT_KINDS: not learned)
REAL_CASES = [
    # Bedrock through boto3: only botocore's message, no status, no type
    ("bedrock", {"message": BOTOCORE.format("ThrottlingException", "Too many requests")}, False),
    (
        "bedrock",
        {
            "message": BOTOCORE.format(
                "ServiceUnavailableException", "Bedrock is unable to process your request."
            )
        },
        False,
    ),
    (
        "bedrock",
        {
            "message": BOTOCORE.format(
                "ModelTimeoutException",
                "The request took too long to process. Processing time exceeded the model "
                "timeout length.",
            )
        },
        False,
    ),
    (
        "bedrock",
        {
            "message": BOTOCORE.format(
                "InternalServerException",
                "The server encountered an internal error while processing the request.",
            )
        },
        False,
    ),
    # a request over the whole per-minute token limit can never pass: a prompt too large
    (
        "openai",
        {
            "status_code": 429,
            "type": "tokens",
            "provider_code": "rate_limit_exceeded",
            "message": OPENAI_TPM,
        },
        True,
    ),
    (
        "groq",
        {
            "status_code": 413,
            "type": "tokens",
            "provider_code": "rate_limit_exceeded",
            "message": GROQ_TPM,
        },
        True,
    ),
    (
        "groq",
        {
            "status_code": 413,
            "type": "tokens",
            "provider_code": "rate_limit_exceeded",
            "message": GROQ_TPM_TIER,
        },
        True,
    ),
    # Gemini's free tier for a model outside the plan: a spent quota, not a rate limit
    (
        "gemini",
        {"status_code": 429, "type": "RESOURCE_EXHAUSTED", "message": GEMINI_LIMIT_ZERO},
        True,
    ),
    # a bare 429 whose message embeds OpenAI's body
    ("openai", {"status_code": 429, "message": EMBEDDED_QUOTA}, True),
    # the healer reads Bedrock's service quota as throttling, and its model error as the
    # provider's failure
    (
        "bedrock",
        {
            "status_code": 400,
            "type": "ServiceQuotaExceededException",
            "message": "Your request exceeds the service quota for your account.",
        },
        False,
    ),
    (
        "bedrock",
        {
            "status_code": 424,
            "type": "ModelErrorException",
            "message": "The request failed due to an error while processing the model.",
        },
        False,
    ),
    # the SDK's timeout, with only its message
    ("openai", {"message": "Request timed out."}, False),
]


@pytest.mark.parametrize(("provider", "reported", "learned"), REAL_CASES)
def test_real_payloads_are_read_as_the_healer_reads_them(
    provider: str, reported: dict, learned: bool
) -> None:
    assert says_about_quality(ErrorInfo(**reported), provider) is learned
