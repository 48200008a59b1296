"""Which failed calls say something about an arm's quality. Pure: no I/O.

A failed call reaches the optimizer as an ``agent.error`` event. Only some failures are the
model's own, and those are learned as quality-0 outcomes of the arm
(:func:`says_about_quality`):

- the model answered, but with output the agent could not use (``invalid_output``, such as
  OpenAI's ``model_error``), or refused the prompt (``content_policy``);
- the prompt is over the model's context window (``context_length_exceeded``): the arm
  cannot serve prompts of that size, which the quality model learns with the prompt size;
- the provider does not know the model (``model_not_found``, or a bare 404): the arm cannot
  answer at all.

The others are not the model's quality. Rate limits, quotas, overload, server errors,
timeouts and the network are the provider's availability: the healer's circuit breakers
route the fleet around them (recommendations leave out an arm whose breaker is open), and
they pass. A bad request or refused credentials are the agent's own. Learned as quality-0
outcomes, a rate-limit storm read as a collapse of the arm's quality: its drift detector
fired, its estimate fell from 0.88 to 0.09, and an experiment's promoted winner lost its pin.

The kind is the agent's hint (``error.kind``) when it sent one other than ``unknown``; else
the provider's error type and code are searched for the words of a model-side failure; else
only a 404 counts. A 500 alone is not enough: a server error and an unusable answer both come
as 500.

Examples
--------
>>> from finops.common.events.schemas.error_data import ErrorInfo
>>> says_about_quality(ErrorInfo(kind="rate_limit", status_code=429, message="slow down"))
False
>>> says_about_quality(ErrorInfo(status_code=500, provider_code="model_error", message="..."))
True
>>> says_about_quality(ErrorInfo(status_code=500, message="The server had an error"))
False
>>> says_about_quality(ErrorInfo(status_code=404, message="The model does not exist"))
True
"""

from __future__ import annotations

from finops.common.events.schemas.error_data import ErrorInfo

#: the kinds of the shared taxonomy that are a failure of the model's answer
QUALITY_KINDS = frozenset(
    {"invalid_output", "content_policy", "context_length_exceeded", "model_not_found"}
)
#: words of a provider's error type or code that name a model-side failure (OpenAI's
#: ``model_error`` and ``invalid_prompt``, Azure's ``content_filter``, ``context_length_exceeded``,
#: ``model_not_found``, …)
QUALITY_CODE_WORDS = (
    "model_error",
    "invalid_output",
    "content_policy",
    "content_filter",
    "invalid_prompt",
    "context_length",
    "model_not_found",
)
#: a status that alone says the model is not there
MODEL_NOT_FOUND_STATUS = 404


def says_about_quality(error: ErrorInfo) -> bool:
    """Whether a failed call is a quality-0 outcome of its arm (see the module's docstring)."""
    if error.kind is not None and error.kind != "unknown":
        return error.kind in QUALITY_KINDS
    codes = " ".join(c for c in (error.type, error.provider_code) if c).lower()
    if any(word in codes for word in QUALITY_CODE_WORDS):
        return True
    return error.status_code == MODEL_NOT_FOUND_STATUS
