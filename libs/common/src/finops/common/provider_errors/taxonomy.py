"""The error taxonomy of the healer and the optimizer: every provider error falls into exactly
one of these kinds.

Pure: no I/O. The rules that map a provider's status, error type/code, message and headers
to a kind live in :mod:`finops.common.provider_errors.rules` (one data table); the healer
gives messages no rule knows to its learned text classifier. This module holds only the
shared vocabulary (``finops.common.events.schemas.fields.ErrorKind``, the event schema's
Literal, has the same values: a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong, as far as the remedy is concerned."""

    RATE_LIMIT = "rate_limit"
    QUOTA_EXHAUSTED = "quota_exhausted"  # billing or quota used up: not retryable
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    INVALID_OUTPUT = "invalid_output"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"  # 401 and 403
    BAD_REQUEST = "bad_request"
    MODEL_NOT_FOUND = "model_not_found"
    UNKNOWN = "unknown"


#: Kinds that the same call may get past by waiting and retrying.
RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
    }
)

#: Kinds that count against a provider/model's health (circuit breakers).
PROVIDER_FAULT_KINDS = RETRYABLE_KINDS


@dataclass(frozen=True)
class ProviderError:
    """One failed call as the agent saw it (status, provider's error type/code, message,
    the response headers that matter, e.g. ``retry-after``, ``x-ratelimit-*``).

    ``headers`` have lower-case names. ``retry_after_ms`` is a wait the payload stated outside
    the headers and the message (Gemini's ``RetryInfo.retryDelay``, or the agent's own
    ``error.retry_after_ms``).
    """

    message: str = ""
    status: int | None = None
    provider: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after_ms: float | None = None


@dataclass(frozen=True)
class Classification:
    """The verdict on one error (the healer's, or :func:`.classify_by_rules`'s).

    ``rule`` names the rule of the table that matched, ``"classifier"`` for the healer's
    learned text classifier, ``"hint"`` when only the agent's own ``error.kind`` was there to
    go on, or ``"none"`` when nothing was (kind ``unknown``).
    ``stated_wait_ms`` is the wait the provider asked for (header or message), if any.
    """

    kind: ErrorKind
    rule: str
    stated_wait_ms: int | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS
