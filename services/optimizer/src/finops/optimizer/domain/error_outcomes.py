"""Which failed calls say something about an arm's quality. Pure: no I/O.

A failed call reaches the optimizer as an ``agent.error`` event. It counts as a quality-0
outcome of its arm (:func:`says_about_quality`) unless it is the provider's passing
unavailability: a rate limit, an overload, a server error, a timeout or a network error, the
kinds the healer's circuit breakers count (``PROVIDER_FAULT_KINDS``). The breakers route
the fleet around a provider in that state (recommendations leave out an arm whose breaker is
open), and it passes; learned as quality, a rate-limit storm read as a collapse of the arm's
quality: its drift detector fired, its estimate fell from 0.88 to 0.09, and an experiment's
promoted winner lost its pin.

Everything else still counts: an answer the agent could not use, a refusal, a prompt over
the context window, an unknown model, and also a spent quota or refused credentials, which no
breaker counts and which leave the arm unable to answer until someone acts (not learned, such
an arm would stay a candidate for exploration for good). So does a failure nothing reads a
kind from (only a message no rule knows, as the SDK reports an answer it could not parse).

The kind is the healer's, read by the same rules:
:func:`~finops.common.provider_errors.classify.classify_by_rules` (the provider's error type
and code, known messages and headers, including what an SDK's exception string embeds, then
the agent's ``error.kind``, then the status alone). Only the healer's learned text
classifier, taught by its operators, is not in it. So a 429 that says "Request too large …
on tokens per min" is a prompt over the limit (learned), and Bedrock's "An error occurred
(ThrottlingException) …" with no status is a rate limit (passing).

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
from finops.common.provider_errors import PROVIDER_FAULT_KINDS, classify_by_rules, from_error_info


def passing_unavailability(error: ErrorInfo, provider: str | None = None) -> bool:
    """Whether a failed call is the provider's passing unavailability: its kind, by the shared
    rules, is one the healer's breakers count (see the module). ``provider`` is the event's:
    a few rules hold for one provider family only."""
    reported = from_error_info(error, provider)
    return classify_by_rules(reported.error, reported.hint).kind in PROVIDER_FAULT_KINDS


def says_about_quality(error: ErrorInfo, provider: str | None = None) -> bool:
    """Whether a failed call is a quality-0 outcome of its arm: every one but the provider's
    passing unavailability (:func:`passing_unavailability`)."""
    return not passing_unavailability(error, provider)
