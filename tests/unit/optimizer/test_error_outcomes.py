"""Which failed calls the optimizer learns as quality-0 outcomes of their arm."""

from __future__ import annotations

import pytest

from finops.common.events.schemas.error_data import ErrorInfo
from finops.optimizer.domain.error_outcomes import says_about_quality

# (what the agent reported, learned as a quality-0 outcome?): the simulation's faults as its
# providers raise them (libs/cli/.../simulation/providers.py), with and without the kind hint
CASES = [
    ({"status_code": 429, "provider_code": "rate_limit_exceeded"}, False),
    ({"status_code": 503, "provider_code": "overloaded_error"}, False),
    ({"status_code": 500, "provider_code": "server_error"}, False),
    ({"status_code": 500}, False),
    ({"kind": "timeout"}, False),
    ({"kind": "network"}, False),
    ({"kind": "quota_exhausted", "status_code": 429}, False),
    ({"kind": "auth", "status_code": 401}, False),
    ({"status_code": 400, "type": "invalid_request_error"}, False),
    ({}, False),
    ({"status_code": 500, "provider_code": "model_error"}, True),
    ({"kind": "invalid_output", "status_code": 500}, True),
    ({"status_code": 400, "provider_code": "invalid_prompt"}, True),
    ({"status_code": 400, "provider_code": "content_filter"}, True),
    ({"status_code": 400, "provider_code": "context_length_exceeded"}, True),
    ({"kind": "context_length_exceeded"}, True),
    ({"status_code": 404, "type": "invalid_request_error"}, True),
    ({"kind": "model_not_found"}, True),
    # the hint decides over the codes when it names a kind; `unknown` leaves it to them
    ({"kind": "rate_limit", "provider_code": "model_error"}, False),
    ({"kind": "unknown", "provider_code": "model_error"}, True),
]


@pytest.mark.parametrize(("reported", "learned"), CASES)
def test_only_the_models_own_failures_are_quality_outcomes(reported: dict, learned: bool) -> None:
    assert says_about_quality(ErrorInfo(message="failed", **reported)) is learned
