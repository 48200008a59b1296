"""Provider error payloads → :class:`ProviderError`.

Every provider wraps its error differently; this module reads the shapes they use, so the
rules only ever look at ``status``, ``error_type``, ``error_code``, ``message`` and headers:

* OpenAI, Azure OpenAI, Mistral (OpenAI-style), Groq: ``{"error": {"message", "type",
  "code", "param"}}`` (Azure adds ``innererror``; Mistral also answers ``{"object": "error",
  "message", "type", "code"}``, ``{"message": "…"}`` or ``{"detail": …}``);
* Anthropic: ``{"type": "error", "error": {"type", "message"}}``;
* Google Gemini / Vertex AI: ``{"error": {"code": 429, "message", "status", "details":
  [ErrorInfo, QuotaFailure, RetryInfo, …]}}``, sometimes inside a list, sometimes with the whole
  body JSON-encoded in an outer gateway's ``message``;
* AWS Bedrock: ``{"message": "…"}`` with the exception name in the ``x-amzn-errortype``
  header (``:exception-type`` on event streams), or boto3's parsed
  ``{"Error": {"Code", "Message"}, "ResponseMetadata": {"HTTPStatusCode", "HTTPHeaders"}}``;
* SDK exception strings that embed the body: ``Error code: 429 - {'error': {...}}`` (a Python
  repr), ``429 RESOURCE_EXHAUSTED. {...}``, botocore's ``An error occurred
  (ThrottlingException) when calling the InvokeModel operation: …``.

Pure: no I/O. Bodies are parsed with :func:`json.loads` or, for Python reprs,
:func:`ast.literal_eval` (literals only), both bounded in size.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from finops.common.events import ErrorData
from finops.common.events.schemas import ErrorInfo
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError
from finops.common.provider_errors.waits import parse_duration_ms

MAX_MESSAGE = 2000
_MAX_PARSE = 16_000
_MAX_DEPTH = 4
_BOTOCORE = re.compile(r"An error occurred \((\w+)\) when calling the \w+ operation", re.I)
# "openai.APIConnectionError: Connection error.", "httpx.ConnectError: [Errno 111] …",
# "google.api_core.exceptions.ResourceExhausted: 429 …" (a dotted path makes any name count)
_EXCEPTION_NAME = re.compile(
    r"^(?:<class '|\[)?(?:(?:[a-z_]\w*\.)+([A-Z]\w+)|([A-Z]\w*(?:Error|Exception|Timeout)))"
    r"(?:'>)?\]?:"
)
# "Status: 429", "status code 401", "Error: 429 Too Many Requests", "402 This request …"
_STATUS_IN_TEXT = re.compile(
    r"(?:^(?:[\w.]+:\s*)?|\berror:?\s+|\bstatus(?:\s+code)?:?\s*|\bhttp(?:/[\d.]+|\s+code)?:?\s+)"
    r"\(?([1-5]\d\d)\)?(?![\d.,])",
    re.IGNORECASE,
)
_PREFIX_STATUS = re.compile(r"(?<![\d.])([1-5]\d\d)(?![\d.])")
_PREFIX_TYPE = re.compile(r"\b([A-Z][A-Z_]{3,})\b")
_AMZN_TYPE_HEADERS = ("x-amzn-errortype", ":exception-type")
_MAYBE_STRUCTURED = re.compile(
    r"[{\[]|An error occurred \(|^\S*(?:Error|Exception|Timeout)\S*:|^[\w.]+\.[A-Z]\w+:|[1-5]\d\d"
)


@dataclass
class _Fields:
    message: str | None = None
    status: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after_ms: float | None = None
    headers: dict[str, str] | None = None

    def fill(self, other: _Fields) -> None:
        """Take ``other``'s values where this one has none (inner payloads win)."""
        for name in ("message", "status", "error_type", "error_code", "retry_after_ms"):
            if getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
        if other.headers:
            self.headers = {**(self.headers or {}), **other.headers}


def lower_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Header names lower-cased, values as strings (the last of repeated names wins)."""
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)[:MAX_MESSAGE]


def _identifier(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _parse_text(text: str) -> Any:
    """A JSON document or Python literal in ``text``, or ``None``."""
    text = text.strip()[:_MAX_PARSE]
    if not text or text[0] not in "{[":
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _google_details(details: Any, found: _Fields) -> None:
    """ErrorInfo.reason, QuotaFailure quota ids and RetryInfo.retryDelay of a Google error."""
    if not isinstance(details, list):
        return
    quota_ids: list[str] = []
    for item in details:
        if not isinstance(item, Mapping):
            continue
        kind = str(item.get("@type", ""))
        if kind.endswith("ErrorInfo") and _identifier(item.get("reason")):
            found.error_code = found.error_code or item["reason"]
        elif kind.endswith("QuotaFailure"):
            for violation in item.get("violations") or []:
                if isinstance(violation, Mapping) and _identifier(violation.get("quotaId")):
                    quota_ids.append(violation["quotaId"])
        elif kind.endswith("RetryInfo") and isinstance(item.get("retryDelay"), str):
            found.retry_after_ms = parse_duration_ms(item["retryDelay"])
    # A daily quota will not come back within a retry budget: name it when there is one.
    daily = [q for q in quota_ids if "PerDay" in q]
    if daily or (quota_ids and not found.error_code):
        found.error_code = (daily or quota_ids)[0]


def _from_error_object(inner: Mapping[str, Any], depth: int) -> _Fields:
    found = _Fields(
        message=_text(inner.get("message")),
        error_type=_identifier(inner.get("type")) or _identifier(inner.get("status")),
    )
    code = inner.get("code")
    if isinstance(code, int) and 100 <= code <= 599:
        found.status = code
    elif _identifier(code):
        found.error_code = code
    innererror = inner.get("innererror")
    if isinstance(innererror, Mapping) and not found.error_code:
        found.error_code = _identifier(innererror.get("code"))
    _google_details(inner.get("details"), found)
    errors = inner.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        found.error_code = found.error_code or _identifier(errors[0].get("reason"))
    # A gateway that re-wraps the provider's JSON body as its message (Gemini CLI, proxies).
    if found.message and depth < _MAX_DEPTH:
        nested = _parse_text(found.message)
        if nested is not None:
            found.fill(_extract(nested, depth + 1))
    return found


def _extract(obj: Any, depth: int = 0) -> _Fields:
    """The error fields of one parsed payload."""
    if depth > _MAX_DEPTH:
        return _Fields()
    if isinstance(obj, list):
        first = next((item for item in obj if isinstance(item, Mapping)), None)
        return _extract(first, depth + 1) if first is not None else _Fields()
    if not isinstance(obj, Mapping):
        return _Fields()
    error = obj.get("error")
    if isinstance(error, Mapping):
        return _from_error_object(error, depth)
    boto = obj.get("Error")
    if isinstance(boto, Mapping):  # boto3's parsed ClientError response
        meta = obj.get("ResponseMetadata")
        meta = meta if isinstance(meta, Mapping) else {}
        status = meta.get("HTTPStatusCode")
        return _Fields(
            message=_text(boto.get("Message")),
            error_type=_identifier(boto.get("Code")),
            status=status if isinstance(status, int) else None,
            headers=lower_headers(meta.get("HTTPHeaders")) or None,
        )
    message = obj.get("message", obj.get("Message", obj.get("detail", error)))
    found = _Fields(
        message=_text(message),
        error_type=_identifier(obj.get("type")) or _type_name(obj.get("__type")),
        error_code=_identifier(obj.get("code")) if not isinstance(obj.get("code"), int) else None,
    )
    if isinstance(message, Mapping):  # Mistral 422: {"message": {"detail": [...]}}
        found.message = _text(message.get("detail", message))
    return found


def _type_name(value: Any) -> str | None:
    """``com.amazon.coral.validate#ValidationException`` → ``ValidationException``."""
    name = _identifier(value)
    return name.rsplit("#", 1)[-1] if name else None


def _from_text(text: str) -> _Fields:
    """Fields of a body or exception string: JSON, an embedded JSON/repr, or plain text."""
    parsed = _parse_text(text)
    if parsed is not None:
        return _extract(parsed)
    found = _Fields(message=text)
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        embedded = _parse_text(text[start:])
        if embedded is not None:
            found = _Fields(message=text)
            found.fill(_extract(embedded))
            prefix = text[:start][-120:]
            if (status := _PREFIX_STATUS.search(prefix)) and found.status is None:
                found.status = int(status.group(1))
            if (name := _PREFIX_TYPE.search(prefix)) and found.error_type is None:
                found.error_type = name.group(1)
    if found.error_type is None and (boto := _BOTOCORE.search(text)):
        found.error_type = boto.group(1)
    if found.error_type is None and (name := _EXCEPTION_NAME.match(text.strip())):
        found.error_type = name.group(1) or name.group(2)
    if found.status is None and (status := _STATUS_IN_TEXT.search(text)):
        found.status = int(status.group(1))
    return found


def provider_error(
    *,
    status: int | None = None,
    body: Any = None,
    headers: Mapping[str, Any] | None = None,
    provider: str | None = None,
    message: str | None = None,
    error_type: str | None = None,
    error_code: str | None = None,
    retry_after_ms: float | None = None,
) -> ProviderError:
    """A :class:`ProviderError` from a response (status, body, headers) and/or an exception.

    ``body`` may be the parsed JSON, its text or bytes. Explicit arguments win over what the
    body says, except that the body's message replaces an exception string that only wraps it.
    """
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body[:_MAX_PARSE]).decode("utf-8", errors="replace")
    found = _Fields()
    if isinstance(body, str):
        found = _from_text(body)
    elif body is not None:
        found = _extract(body)
    if message:
        from_message = _from_text(message)
        from_message.fill(found)
        found = from_message
    all_headers = {**(found.headers or {}), **lower_headers(headers)}
    amzn = next((all_headers[h] for h in _AMZN_TYPE_HEADERS if h in all_headers), None)
    return ProviderError(
        message=(found.message or "")[:MAX_MESSAGE],
        status=status if status is not None else found.status,
        provider=provider,
        error_type=error_type or found.error_type or (amzn.split(":", 1)[0] if amzn else None),
        error_code=error_code or found.error_code,
        headers=all_headers,
        retry_after_ms=retry_after_ms if retry_after_ms is not None else found.retry_after_ms,
    )


def enrich(error: ProviderError) -> ProviderError:
    """``error`` with what its message embeds (a JSON body, botocore's exception name) filled
    in where the structured fields are empty; unchanged when there is nothing to add."""
    if not error.message or not _MAYBE_STRUCTURED.search(error.message):
        return error
    found = _from_text(error.message)
    updates: dict[str, Any] = {}
    if found.message and found.message != error.message:
        updates["message"] = found.message[:MAX_MESSAGE]
    for name in ("status", "error_type", "error_code", "retry_after_ms"):
        if getattr(error, name) is None and getattr(found, name) is not None:
            updates[name] = getattr(found, name)
    if found.headers:
        updates["headers"] = {**found.headers, **error.headers}
    return replace(error, **updates) if updates else error


@dataclass(frozen=True)
class ReportedError:
    """A failed call as an event reports it: the provider's error, and the kind the agent
    gave it (its hint to the classification; ``None`` when it gave none)."""

    error: ProviderError
    hint: ErrorKind | None


def from_error_data(data: ErrorData) -> ReportedError:
    """The failed call an ``agent.error`` event reports."""
    return from_error_info(data.error, data.provider)


def from_error_info(error: ErrorInfo, provider: str | None) -> ReportedError:
    """The failed call of an event's ``error`` part; ``provider`` is the event's (``None``
    when the caller does not know it)."""
    reported = ProviderError(
        message=error.message,
        status=error.status_code,
        provider=provider,
        error_type=error.type,
        error_code=error.provider_code,
        headers=dict(error.headers or {}),
        retry_after_ms=error.retry_after_ms,
    )
    return ReportedError(reported, ErrorKind(error.kind) if error.kind else None)
