"""The shared classification of provider errors: its tiers' order, its taxonomy equal to the
event schema's, and the healer's classifier, untaught, giving the same verdict on every real
payload of the healer's table."""

from __future__ import annotations

from typing import Any

import pytest
from provider_error_cases import CASES, to_error

from finops.common.events import ERROR_KINDS
from finops.common.provider_errors import (
    PROVIDER_FAULT_KINDS,
    ErrorKind,
    ProviderError,
    classify_by_rules,
)
from finops.healer.domain.classify import classify

K = ErrorKind


def test_the_taxonomy_has_the_event_schemas_kinds() -> None:
    assert [k.value for k in ErrorKind] == list(ERROR_KINDS)


def test_the_provider_fault_kinds_are_the_passing_ones() -> None:
    assert {k.value for k in PROVIDER_FAULT_KINDS} == {
        "rate_limit",
        "overloaded",
        "server_error",
        "timeout",
        "network",
    }


@pytest.mark.parametrize(
    ("error", "hint", "kind", "rule"),
    [
        # a specific rule wins over the hint
        (ProviderError("x", 429, error_code="insufficient_quota"), K.RATE_LIMIT, K.QUOTA_EXHAUSTED,
         "openai_insufficient_quota"),
        # the hint wins over the status alone
        (ProviderError("x", 500), K.INVALID_OUTPUT, K.INVALID_OUTPUT, "hint"),
        # an unknown hint is no hint
        (ProviderError("x", 503), K.UNKNOWN, K.OVERLOADED, "status_503"),
        (ProviderError("x"), None, K.UNKNOWN, "none"),
    ],
)  # fmt: skip
def test_rules_then_hint_then_status(
    error: ProviderError, hint: ErrorKind | None, kind: ErrorKind, rule: str
) -> None:
    verdict = classify_by_rules(error, hint)
    assert (verdict.kind, verdict.rule) == (kind, rule)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_the_healers_untaught_classifier_says_what_the_rules_say(case: dict[str, Any]) -> None:
    error = to_error(case)
    verdict = classify_by_rules(error)
    assert verdict == classify(error)
    assert (verdict.kind.value, verdict.stated_wait_ms) == (case["kind"], case["stated_wait_ms"])
