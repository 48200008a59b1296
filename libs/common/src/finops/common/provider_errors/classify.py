"""Classify one provider error by its rules: what anyone may read of it without learned state.

1. The specific rules of :data:`~finops.common.provider_errors.rules.SPECIFIC_RULES` (the
   provider's error type or code, a known message, a header) decide when one matches.
2. Otherwise the agent's own ``error.kind`` (the hint) is taken, when it sent one.
3. Otherwise the status code alone decides
   (:data:`~finops.common.provider_errors.status_rules.STATUS_RULES`: 401/403 → auth,
   404 → model_not_found, 429 → rate_limit, 503 → overloaded, 5xx → …).
4. Otherwise the kind is ``unknown``.

Before that, :func:`~finops.common.provider_errors.payload.enrich` pulls the provider's type,
code and status out of messages that embed the response body (``Error code: 429 - {'error':
…}``), and :func:`~finops.common.provider_errors.waits.stated_wait_ms` reads the wait the
provider asked for. The healer puts its learned text classifier between steps 1 and 2
(``finops.healer.domain.classify``), from :func:`specific_verdict` and
:func:`fallback_verdict`; the optimizer reads :func:`classify_by_rules` as it is.
Pure: no I/O.

Examples
--------
>>> from finops.common.provider_errors.taxonomy import PROVIDER_FAULT_KINDS
>>> error = ProviderError("An error occurred (ThrottlingException) when calling the "
...                       "InvokeModel operation: Too many requests", provider="bedrock")
>>> verdict = classify_by_rules(error)
>>> verdict.kind.value, verdict.rule, verdict.kind in PROVIDER_FAULT_KINDS
('rate_limit', 'rate_limit_code', True)
>>> classify_by_rules(ProviderError("failed", status=500), ErrorKind.INVALID_OUTPUT).rule
'hint'
>>> classify_by_rules(ProviderError("failed", status=500)).kind.value
'server_error'
"""

from __future__ import annotations

from datetime import datetime

from finops.common.provider_errors.matching import first_match
from finops.common.provider_errors.payload import enrich
from finops.common.provider_errors.rules import SPECIFIC_RULES
from finops.common.provider_errors.status_rules import STATUS_RULES
from finops.common.provider_errors.taxonomy import Classification, ErrorKind, ProviderError
from finops.common.provider_errors.waits import stated_wait_ms

HINT = "hint"
NO_RULE = "none"


def specific_verdict(error: ProviderError, wait: int | None) -> Classification | None:
    """Step 1: the verdict of the first specific rule ``error`` (already enriched) matches."""
    rule = first_match(SPECIFIC_RULES, error)
    return Classification(rule.kind, rule.name, wait) if rule is not None else None


def fallback_verdict(
    error: ProviderError, hint: ErrorKind | None, wait: int | None
) -> Classification:
    """Steps 2-4, when no specific rule (nor learned state) decided: the hint, the status
    alone, else ``unknown``."""
    if hint is not None and hint is not ErrorKind.UNKNOWN:
        return Classification(hint, HINT, wait)
    rule = first_match(STATUS_RULES, error)
    if rule is not None:
        return Classification(rule.kind, rule.name, wait)
    return Classification(ErrorKind.UNKNOWN, NO_RULE, wait)


def classify_by_rules(
    error: ProviderError, hint: ErrorKind | None = None, *, now: datetime | None = None
) -> Classification:
    """The kind of ``error`` by the rules, the hint and the status, and the wait its provider
    stated. ``now`` anchors absolute times (``Retry-After`` as an HTTP date) when the response
    carries no ``date`` header."""
    error = enrich(error)
    wait = stated_wait_ms(error, now)
    return specific_verdict(error, wait) or fallback_verdict(error, hint, wait)
