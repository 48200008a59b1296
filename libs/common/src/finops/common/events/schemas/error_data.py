"""The data of an ``agent.error`` event: the error as the agent saw it, and the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from finops.common.events.schemas.call_data import CallIdentity, Experiment, Remedy
from finops.common.events.schemas.fields import (
    _SERVER,
    ERROR_KIND_ALIASES,
    ERROR_KINDS,
    MAX_ERROR_HEADERS,
    MAX_ERROR_MESSAGE,
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    ErrorKind,
    Id128,
    Millis,
    _Strict,
)
from finops.common.events.usage import TokenCount


def _truncate(limit: int) -> Any:
    def truncate(v: Any) -> Any:
        if type(v) is str and len(v) > limit:
            return v[: limit - 1] + "\u2026"
        return v

    return BeforeValidator(truncate)


def _kind_alias(v: Any) -> Any:
    return ERROR_KIND_ALIASES.get(v, v) if type(v) is str else v


ErrorKindInput = Annotated[
    ErrorKind,
    BeforeValidator(_kind_alias),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [*ERROR_KINDS, *ERROR_KIND_ALIASES],
            "description": "The agent's own reading of the error (a hint: the healer classifies "
            "every error itself). Old names are read as the current ones: "
            + ", ".join(f"{old} → {new}" for old, new in ERROR_KIND_ALIASES.items())
            + ".",
        },
        mode="validation",
    ),
]


def _error_headers(v: Any) -> Any:
    """Header names lower-cased (HTTP names are case-insensitive); a name given twice is an
    error rather than one value silently winning."""
    if not isinstance(v, Mapping):
        return v
    if len(v) > MAX_ERROR_HEADERS:
        raise ValueError(f"at most {MAX_ERROR_HEADERS} headers")
    out: dict[Any, Any] = {}
    for name, value in v.items():
        key = name.lower() if isinstance(name, str) else name
        if key in out:
            raise ValueError(f"header {key!r} given more than once")
        out[key] = value
    return out


# RFC 9110 token characters (after lower-casing), plus the ':' of event-stream pseudo-headers.
_HEADER_NAME = r"^:?[!#-'*+.0-9^-z|~-]+$"
HeaderName = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_HEADER_NAME, pattern=_HEADER_NAME),
]
HeaderValue = Annotated[str, StringConstraints(strict=True, max_length=MAX_HEADER_VALUE)]
ErrorHeaders = Annotated[
    dict[HeaderName, HeaderValue],
    BeforeValidator(_error_headers),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_ERROR_HEADERS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": MAX_HEADER_NAME,
                "pattern": r"^:?[!#-'*+.0-9A-Z^-z|~-]+$",
            },
            "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE},
            "description": "Response headers that matter for the remedy (retry-after, "
            "retry-after-ms, x-ratelimit-*, anthropic-ratelimit-*, x-amzn-errortype, date): "
            f"at most {MAX_ERROR_HEADERS}; names are stored lower-cased.",
        },
        mode="validation",
    ),
]


class ErrorInfo(_Strict):
    kind: ErrorKindInput | None = None
    status_code: Annotated[int, Field(strict=True, ge=100, le=599)] | None = None
    type: Id128 | None = Field(
        None,
        description="The provider's error type (invalid_request_error, RESOURCE_EXHAUSTED, "
        "ThrottlingException, …).",
    )
    provider_code: Id128 | None = Field(
        None, description="The provider's error code (insufficient_quota, API_KEY_INVALID, …)."
    )
    # No maxLength: a longer message is accepted and truncated (a schema that said otherwise
    # would promise a refusal that never comes).
    message: Annotated[str, StringConstraints(strict=True), _truncate(MAX_ERROR_MESSAGE)] = Field(
        description=f"Provider error message; truncated to {MAX_ERROR_MESSAGE} characters."
    )
    headers: ErrorHeaders | None = None
    retry_after_ms: Millis | None = None


class RequestInfo(_Strict):
    input_tokens: TokenCount | None = None
    max_tokens: Annotated[int, Field(strict=True, ge=1, le=10_000_000)] | None = None


class ErrorDataV1(CallIdentity):
    error: ErrorInfo
    request: RequestInfo | None = None
    attempt: Annotated[int, Field(strict=True, ge=1, le=1000)] = 1
    remedy: Remedy | None = None
    # Left out of the record when absent: a reader of a version before it (one that refuses
    # fields it does not know) reads every other error as before.
    experiment: Experiment | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only on the error after which a call assigned to an experiment gave up "
        "(every attempt failed): the assignment, so the experiment counts the call as a "
        "failure of its variant. The healer and the optimizer read the error as any other.",
    )
    principal: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, json_schema_extra=_SERVER
    )
