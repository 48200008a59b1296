"""Reading a failed LLM call from its exception (:func:`read_failure`), duck-typed.

``.status_code``, ``.body`` and ``.response.headers`` (the openai and anthropic SDKs),
``.response`` of ``httpx.HTTPStatusError``, the ``.response`` dict of botocore's
``ClientError`` (Bedrock through boto3), or a plain dict with
``status``/``body``/``headers``/``message`` (what :func:`read_failure` takes: ``call()``
gets exceptions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from finops.client._answers import RETRYABLE_STATUS
from finops.client._names import refused_character

#: Response headers the healer reads (a prefix ending in "-" matches every header under it).
REMEDY_HEADERS = (
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-",
    "x-rate-limit-",
    "anthropic-ratelimit-",
    "x-amzn-errortype",
    "date",
)
MAX_HEADERS = 32
MAX_MESSAGE = 2000
OFFLINE_STATUS = RETRYABLE_STATUS | {529}
#: Bedrock's error codes of passing unavailability, lower-cased: an error of its response
#: stream (botocore's EventStreamError) carries its code and no HTTP status.
OFFLINE_AWS_CODES = frozenset(
    {
        "throttlingexception",
        "serviceunavailableexception",
        "modeltimeoutexception",
        "internalserverexception",
        "modelnotreadyexception",
    }
)
#: Exception names (of any library) that mean no complete answer came back.
TRANSPORT_NAMES = ("Timeout", "TimedOut", "Connect", "Connection", "Network", "Protocol")


@dataclass(frozen=True)
class Failure:
    """One failed call as the SDK reads it from the exception."""

    message: str
    status: int | None = None
    error_type: str | None = None
    provider_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    transport: bool = False  # a timeout or connection error: no complete answer

    @property
    def transient(self) -> bool:
        """Worth a plain retry when the healer cannot be asked."""
        return (
            self.transport
            or self.status in OFFLINE_STATUS
            or (self.status is None and (self.error_type or "").lower() in OFFLINE_AWS_CODES)
        )

    def retry_after_s(self) -> float | None:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                return float(self.headers[name]) * scale
            except (KeyError, ValueError):
                continue
        return None


def _get(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _aws_metadata(exc: Any) -> Any:
    """``ResponseMetadata`` of botocore's ``ClientError`` (its ``.response`` is a dict with
    ``Error`` and ``ResponseMetadata``: Bedrock called through boto3), or None."""
    return _get(_get(exc, "response"), "ResponseMetadata")


def _headers_of(exc: Any) -> dict[str, str]:
    raw = (
        _get(exc, "headers")
        or _get(_get(exc, "response"), "headers")
        or _get(_aws_metadata(exc), "HTTPHeaders")
        or {}
    )
    try:
        items = list(raw.items())
    except AttributeError:
        return {}
    kept: dict[str, str] = {}
    for name, value in items:
        key = str(name).lower()
        if any(key == h or (h.endswith("-") and key.startswith(h)) for h in REMEDY_HEADERS):
            kept[key] = str(value)[:512]
        if len(kept) >= MAX_HEADERS:
            break
    return kept


def _status_of(exc: Any) -> int | None:
    for candidate in (
        _get(exc, "status_code"),
        _get(exc, "status"),
        _get(_get(exc, "response"), "status_code"),
        _get(_aws_metadata(exc), "HTTPStatusCode"),
        _get(exc, "code"),
    ):
        if (
            isinstance(candidate, int)
            and not isinstance(candidate, bool)
            and 100 <= candidate <= 599
        ):
            return candidate
    return None


def _body_of(exc: Any) -> Any:
    body = _get(exc, "body")
    response = _get(exc, "response")
    if body is None and isinstance(response, httpx.Response):
        try:
            body = response.json()
        except (ValueError, httpx.ResponseNotRead):
            body = None
    aws_error = _get(response, "Error") if isinstance(response, Mapping) else None
    if body is None and isinstance(aws_error, Mapping):
        # botocore's ClientError: the error's code is the provider's error type
        # (ThrottlingException, ValidationException, ...)
        body = {"error": {"type": aws_error.get("Code"), "message": aws_error.get("Message")}}
    return body


def _identifier(value: Any) -> str | None:
    """A provider's error type or code as the error report's name, or None: the provider's
    body is not the agent's to fix, so one that is no name (too long, or holding a control
    character, which ingest and the SDK refuse in a name) is left out of the report rather
    than turning the agent's failure into the SDK's ValueError."""
    if isinstance(value, str) and 0 < len(value) <= 128 and refused_character(value) is None:
        return value
    return None


def read_failure(exc: Any) -> Failure:
    """What an exception (or a dict describing one) says about the failed call."""
    body = _body_of(exc)
    inner = _get(body, "error") if isinstance(body, Mapping) else None
    inner = inner if isinstance(inner, Mapping) else body if isinstance(body, Mapping) else {}
    name = type(exc).__name__
    transport = not isinstance(exc, Mapping) and (
        isinstance(exc, (TimeoutError, ConnectionError, httpx.TransportError))
        or any(part in name for part in TRANSPORT_NAMES)
    )
    if isinstance(exc, Mapping):
        text = str(exc.get("message") or "")
    else:
        text = f"{type(exc).__module__}.{name}: {exc}"
    if isinstance(body, (Mapping, list)) and json.dumps(body, default=str)[:40] not in text:
        text = f"{text} - {json.dumps(body, default=str)}"
    return Failure(
        message=text[:MAX_MESSAGE],
        status=_status_of(exc),
        error_type=_identifier(_get(inner, "type")) or _identifier(_get(inner, "status")),
        provider_code=_identifier(_get(inner, "code")),
        headers=_headers_of(exc),
        transport=transport,
    )
