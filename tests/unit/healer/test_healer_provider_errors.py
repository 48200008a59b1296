"""Real provider error payloads → the right kind and the provider's stated wait.

The cases live in ``provider_errors.json`` (status, body, headers and/or the exception string
an SDK raised, each with its public source). Each one is turned into a ``ProviderError`` the
way the SDK and the healer do it (:func:`provider_error`) and classified without any hint from
the agent and without taught labels: what is tested is the rules and the parsing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from provider_error_cases import CASES, to_error

from finops.common.provider_errors.matching import provider_family
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.classify import classify

SEVEN_PROVIDERS = {"openai", "azure", "anthropic", "google", "bedrock", "mistral", "http"}


def family_of(case: dict[str, Any]) -> str:
    """The provider family a case counts for; every other name is plain HTTP."""
    return provider_family(case["provider"]) or "http"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_real_payload_gets_its_kind_and_stated_wait(case: dict[str, Any]) -> None:
    verdict = classify(to_error(case))
    assert (verdict.kind.value, verdict.stated_wait_ms) == (case["kind"], case["stated_wait_ms"])


def test_every_case_names_a_public_source_and_a_known_kind() -> None:
    kinds = {k.value for k in ErrorKind}
    for case in CASES:
        assert case["source"].startswith("https://"), case["id"]
        assert case["kind"] in kinds, case["id"]
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_the_table_covers_seven_providers_and_every_kind() -> None:
    per_family = Counter(family_of(c) for c in CASES)
    assert set(per_family) == SEVEN_PROVIDERS
    assert min(per_family.values()) >= 5
    assert len(CASES) >= 60
    assert {c["kind"] for c in CASES} == {k.value for k in ErrorKind}
