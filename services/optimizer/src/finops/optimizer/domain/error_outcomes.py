"""Which failed calls say something about an arm's quality. Pure: no I/O.

A failed call reaches the optimizer as an ``agent.error`` event. It counts as a quality-0
outcome of its arm (:func:`says_about_quality`) unless it is the provider's passing
unavailability: a rate limit, an overload, a server error, a timeout or a network error, the
kinds the healer's circuit breakers count (its ``PROVIDER_FAULT_KINDS``). The breakers route
the fleet around a provider in that state (recommendations leave out an arm whose breaker is
open), and it passes; learned as quality, a rate-limit storm read as a collapse of the arm's
quality: its drift detector fired, its estimate fell from 0.88 to 0.09, and an experiment's
promoted winner lost its pin.

Everything else still counts: an answer the agent could not use, a refusal, a prompt over
the context window, an unknown model, and also a spent quota or refused credentials, which no
breaker counts and which leave the arm unable to answer until someone acts (not learned, such
an arm would stay a candidate for exploration for good). So does a failure the optimizer
cannot read (only a message, as the SDK reports an answer it could not parse).

The reading follows the healer's order (``finops.healer.domain.classify``) in a small form:
the provider's error type and code first, then the agent's hint (``error.kind``, other than
``unknown``), then the status code alone (408, 429, 5xx: passing; a 500 whose code names a
model error is an unusable answer, read from the code first).

Examples
--------
>>> from finops.common.events.schemas.error_data import ErrorInfo
>>> says_about_quality(ErrorInfo(status_code=429, provider_code="rate_limit_exceeded", message="."))
False
>>> says_about_quality(ErrorInfo(status_code=429, provider_code="insufficient_quota", message="."))
True
>>> says_about_quality(ErrorInfo(status_code=500, provider_code="model_error", message="."))
True
>>> says_about_quality(ErrorInfo(status_code=500, message="The server had an error"))
False
>>> says_about_quality(ErrorInfo(message="Expecting value: line 1 column 1 (char 0)"))
True
"""

from __future__ import annotations

from finops.common.events.schemas.error_data import ErrorInfo

#: the kinds of the shared taxonomy that are the provider's passing unavailability: the
#: healer's circuit breakers count these and no other
PASSING_KINDS = frozenset({"rate_limit", "overloaded", "server_error", "timeout", "network"})
#: words of a provider's error type or code that name a failure of the arm itself, which
#: no breaker counts: the model's answer, its context window, the model's existence, the
#: account's quota or credentials (they win over the passing words below: OpenAI's
#: ``insufficient_quota`` comes with a 429)
ARM_CODE_WORDS = (
    "model_error",
    "invalid_output",
    "content_policy",
    "content_filter",
    "invalid_prompt",
    "context_length",
    "too_large",
    "model_not_found",
    "quota",
    "billing",
    "credit",
    "permission",
    "authentication",
    "api_key",
)
#: words of a provider's error type or code that name passing unavailability
PASSING_CODE_WORDS = (
    "rate_limit",
    "ratelimit",
    "throttl",
    "overloaded",
    "server_error",
    "internal",
    "unavailable",
    "timeout",
    "deadline_exceeded",
    "resource_exhausted",
)
#: statuses that alone say the provider is passingly unavailable
PASSING_STATUSES = frozenset({408, 429})


def passing_unavailability(error: ErrorInfo) -> bool:
    """Whether a failed call is the provider's passing unavailability (see the module)."""
    codes = " ".join(c for c in (error.type, error.provider_code) if c).lower()
    if any(word in codes for word in ARM_CODE_WORDS):
        return False
    if any(word in codes for word in PASSING_CODE_WORDS):
        return True
    if error.kind is not None and error.kind != "unknown":
        return error.kind in PASSING_KINDS
    status = error.status_code
    return status is not None and (status in PASSING_STATUSES or status >= 500)


def says_about_quality(error: ErrorInfo) -> bool:
    """Whether a failed call is a quality-0 outcome of its arm: every one but the provider's
    passing unavailability (:func:`passing_unavailability`)."""
    return not passing_unavailability(error)
