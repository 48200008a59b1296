"""Which failed calls the optimizer learns as quality-0 outcomes of their arm: all but the
provider's passing unavailability, which the healer's breakers count."""

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
