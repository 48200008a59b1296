"""The wait a provider asks for before a retry, read from headers and messages.

Sources, all reduced to milliseconds:

* ``retry-after-ms`` (OpenAI, Azure OpenAI) and ``retry-after`` (seconds, or an HTTP date;
  RFC 9110 §10.2.3);
* ``x-ratelimit-reset-requests`` / ``x-ratelimit-reset-tokens`` (OpenAI: Go-style durations
  such as ``6ms``, ``1s``, ``2m3s``; Azure also sends ``x-rate-limit-reset-tokens: 55`` in
  seconds), counted only for a limit whose ``x-ratelimit-remaining-*`` is 0 or absent, because
  OpenAI sends them on every response;
* ``anthropic-ratelimit-*-reset`` (RFC 3339 times), likewise only for an exhausted limit;
* the message: "try again in 6ms", "Please try again in 20s", "retry after 20 seconds",
  Gemini's "Please retry in 33.5s", "please wait one minute";
* a wait the payload itself carried (Gemini's ``RetryInfo.retryDelay``), passed in as
  :attr:`ProviderError.retry_after_ms`.

When several are stated the longest wins: a retry must honour every one of them. Absolute
times are measured from the response's own ``date`` header when it has one (so the answer does
not depend on clock skew or on when the healer reads the event), else from ``now``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from finops.common.provider_errors.taxonomy import ProviderError

_UNIT_MS = {"h": 3_600_000.0, "m": 60_000.0, "s": 1_000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|h|m|s)")
_WORD_UNIT_MS = {
    "millisecond": 1.0,
    "second": 1_000.0,
    "sec": 1_000.0,
    "minute": 60_000.0,
    "min": 60_000.0,
    "hour": 3_600_000.0,
}
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "five": 5,
    "ten": 10,
    "thirty": 30,
}
_WAIT_WORDS = re.compile(
    r"\bwait(?:\s+for)?\s+(\d+(?:\.\d+)?|a|an|one|two|three|five|ten|thirty)\s*"
    r"(milliseconds?|seconds?|secs?|minutes?|mins?|hours?)\b",
    re.IGNORECASE,
)
_LEAD = r"(?:try|retry|retrying)(?:\s+(?:the\s+request|your\s+request|again))?\s+(?:in|after)\s+"
_MESSAGE_COMPACT = re.compile(_LEAD + r"((?:\d+(?:\.\d+)?(?:ms|us|µs|h|m|s))+)\b", re.IGNORECASE)
_MESSAGE_WORDS = re.compile(
    _LEAD + r"(\d+(?:\.\d+)?)\s*(milliseconds?|seconds?|secs?|minutes?|mins?|hours?)\b",
    re.IGNORECASE,
)
# (reset header, remaining header) pairs; a reset counts when its limit is exhausted.
_RESET_DURATIONS = (
    ("x-ratelimit-reset-requests", "x-ratelimit-remaining-requests"),
    ("x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"),
    ("x-rate-limit-reset-requests", "x-ratelimit-remaining-requests"),
    ("x-rate-limit-reset-tokens", "x-ratelimit-remaining-tokens"),
)
_RESET_TIMES = tuple(
    (f"anthropic-ratelimit-{limit}-reset", f"anthropic-ratelimit-{limit}-remaining")
    for limit in ("requests", "tokens", "input-tokens", "output-tokens")
)


def parse_duration_ms(text: str) -> float | None:
    """``"6ms"``, ``"1s"``, ``"2m3.5s"``, ``"33s"`` or a bare number of seconds → ms."""
    value = text.strip().lower()
    if not value:
        return None
    position, total = 0, 0.0
    for part in _DURATION_PART.finditer(value):
        if part.start() != position:
            return None
        total += float(part.group(1)) * _UNIT_MS[part.group(2)]
        position = part.end()
    if position == len(value):
        return total
    if position:
        return None
    return _seconds_ms(value)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _seconds_ms(value: str) -> float | None:
    seconds = _number(value)
    return None if seconds is None else seconds * 1000.0


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rfc3339(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reference_time(headers: Mapping[str, str], now: datetime | None) -> datetime | None:
    stamped = headers.get("date")
    return (_http_date(stamped) if stamped else None) or now


def _until_ms(moment: datetime | None, reference: datetime | None) -> float | None:
    if moment is None or reference is None:
        return None
    return max(0.0, (moment - reference).total_seconds() * 1000.0)


def _exhausted(headers: Mapping[str, str], remaining_header: str) -> bool:
    remaining = headers.get(remaining_header)
    if remaining is None:
        return True
    try:
        return float(remaining) <= 0
    except ValueError:
        return True


def header_waits_ms(headers: Mapping[str, str], now: datetime | None = None) -> list[float]:
    """Every wait the (lower-cased) response headers state, in ms."""
    waits: list[float] = []
    if (value := headers.get("retry-after-ms")) is not None and (ms := _number(value)) is not None:
        waits.append(ms)
    reference = _reference_time(headers, now)
    if (value := headers.get("retry-after")) is not None:
        seconds = _seconds_ms(value)
        if seconds is None:
            seconds = _until_ms(_http_date(value), reference)
        if seconds is not None:
            waits.append(seconds)
    for reset, remaining in _RESET_DURATIONS:
        if (value := headers.get(reset)) is not None and _exhausted(headers, remaining):
            if (ms := parse_duration_ms(value)) is not None:
                waits.append(ms)
    for reset, remaining in _RESET_TIMES:
        if (value := headers.get(reset)) is not None and _exhausted(headers, remaining):
            if (ms := _until_ms(_rfc3339(value), reference)) is not None:
                waits.append(ms)
    return waits


def message_waits_ms(message: str) -> list[float]:
    """Waits a message states: "try again in 6ms", "retry after 20 seconds", …"""
    waits = [
        ms
        for found in _MESSAGE_COMPACT.findall(message)
        if (ms := parse_duration_ms(found)) is not None
    ]
    for amount, unit in _MESSAGE_WORDS.findall(message):
        waits.append(float(amount) * _WORD_UNIT_MS[unit.lower().rstrip("s")])
    for amount, unit in _WAIT_WORDS.findall(message):
        count = _NUMBER_WORDS.get(amount.lower()) or float(amount)
        waits.append(count * _WORD_UNIT_MS[unit.lower().rstrip("s")])
    return waits


#: The longest wait a stated one is taken as (a day, as an event's ``retry_after_ms`` may say):
#: a header may state any number, and a wait of 10^20 ms is no advice.
MAX_STATED_WAIT_MS = 86_400_000


def stated_wait_ms(error: ProviderError, now: datetime | None = None) -> int | None:
    """The longest wait the provider stated for ``error`` (ms, rounded up, at most
    :data:`MAX_STATED_WAIT_MS`), or ``None``.

    Examples
    --------
    >>> stated_wait_ms(ProviderError(status=429, headers={"retry-after": "99999999999"}))
    86400000
    >>> stated_wait_ms(ProviderError(status=429, headers={"retry-after": "1e308"}))
    86400000
    """
    waits = header_waits_ms(error.headers, now)
    waits += message_waits_ms(error.message)
    if error.retry_after_ms is not None:
        waits.append(error.retry_after_ms)
    # Capped before rounding: a stated number may overflow to infinity once in ms
    # ("retry-after: 1e308", or a 400-digit "try again in …s"), which no int holds.
    return math.ceil(min(max(waits), MAX_STATED_WAIT_MS)) if waits else None
