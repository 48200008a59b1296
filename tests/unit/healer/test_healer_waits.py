from __future__ import annotations

from datetime import UTC, datetime

import pytest

from finops.common.provider_errors.taxonomy import ProviderError
from finops.common.provider_errors.waits import (
    header_waits_ms,
    message_waits_ms,
    parse_duration_ms,
    stated_wait_ms,
)

NOW = datetime(2024, 3, 26, 19, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("6ms", 6.0),
        ("1s", 1000.0),
        ("2m3s", 123_000.0),
        ("1m8.64s", 68_640.0),
        ("33s", 33_000.0),
        ("1h2m", 3_720_000.0),
        ("20.04466179s", 20_044.66179),
        ("55", 55_000.0),
        ("0", 0.0),
    ],
)
def test_durations_parse_to_milliseconds(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "soon", "5 fortnights", "-3", "1s and more", "nan"])
def test_text_that_is_not_a_duration_parses_to_none(text: str) -> None:
    assert parse_duration_ms(text) is None


@pytest.mark.parametrize(
    ("message", "waits"),
    [
        ("Please try again in 6ms. Visit https://platform.openai.com", [6.0]),
        ("Please try again in 20s.", [20_000.0]),
        ("Please retry after 20 seconds. Please go here", [20_000.0]),
        ("Please retry in 33.5s.", [33_500.0]),
        ("Rate limit is exceeded. Try again in 30 seconds.", [30_000.0]),
        ("try again after 5 minutes.", [300_000.0]),
        ("Please try again in 1m8.64s.", [68_640.0]),
        ("You've made too many requests, please wait one minute and try again.", [60_000.0]),
        ("wait 90 seconds", [90_000.0]),
        ("Please try again later.", []),
        ("Too many tokens, please wait before trying again.", []),
        ("wait a moment and try again.", []),
    ],
)
def test_waits_stated_in_messages(message: str, waits: list[float]) -> None:
    assert message_waits_ms(message) == pytest.approx(waits)


def test_retry_after_in_seconds_and_milliseconds() -> None:
    assert header_waits_ms({"retry-after": "20"}) == [20_000.0]
    assert header_waits_ms({"retry-after-ms": "1500"}) == [1500.0]
    assert header_waits_ms({"retry-after": "1.5"}) == [1500.0]


def test_retry_after_as_http_date_counts_from_the_response_date() -> None:
    headers = {
        "retry-after": "Tue, 26 Mar 2024 20:00:09 GMT",
        "date": "Tue, 26 Mar 2024 20:00:00 GMT",
    }
    assert header_waits_ms(headers, now=datetime(2030, 1, 1, tzinfo=UTC)) == [9000.0]


def test_retry_after_as_http_date_without_a_date_header_counts_from_now() -> None:
    assert header_waits_ms({"retry-after": "Tue, 26 Mar 2024 20:00:09 GMT"}, now=NOW) == [10_000.0]
    assert header_waits_ms({"retry-after": "Tue, 26 Mar 2024 20:00:09 GMT"}) == []


def test_a_retry_after_in_the_past_is_a_wait_of_zero() -> None:
    assert header_waits_ms({"retry-after": "Tue, 26 Mar 2024 19:00:00 GMT"}, now=NOW) == [0.0]


def test_openai_reset_headers_count_only_for_an_exhausted_limit() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "2m3s",
    }
    assert header_waits_ms(headers) == [123_000.0]


def test_azure_reset_header_in_seconds_counts_when_no_remaining_is_sent() -> None:
    assert header_waits_ms({"x-rate-limit-reset-tokens": "55"}) == [55_000.0]


def test_anthropic_reset_times_count_only_for_an_exhausted_limit() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2024-03-26T20:00:04Z",
        "anthropic-ratelimit-tokens-remaining": "16000",
        "anthropic-ratelimit-tokens-reset": "2024-03-26T20:01:00Z",
        "date": "Tue, 26 Mar 2024 19:59:59 GMT",
    }
    assert header_waits_ms(headers) == [5000.0]


def test_the_longest_stated_wait_wins_and_is_rounded_up() -> None:
    error = ProviderError(
        message="Please retry in 38.922534355s.",
        headers={"retry-after": "20"},
        retry_after_ms=38_000.0,
    )
    assert stated_wait_ms(error) == 38_923


def test_no_stated_wait_is_none() -> None:
    assert stated_wait_ms(ProviderError(message="Overloaded", status=529)) is None


def test_a_stated_wait_is_taken_as_at_most_a_day() -> None:
    # a header may say anything: 10^20 ms went into the advice and onto finops.healing.v1
    huge = ProviderError(status=429, headers={"retry-after": "99999999999999999999"})
    assert stated_wait_ms(huge) == 86_400_000
    assert stated_wait_ms(ProviderError(status=429, headers={"retry-after": "30"})) == 30_000


@pytest.mark.parametrize(
    "error",
    [
        # each is finite as written and infinite once in milliseconds: a 500 at the advice,
        # and the event dead-lettered by the breakers' and the stats' intakes
        ProviderError(status=429, headers={"retry-after": "1e308"}),
        ProviderError(status=429, headers={"retry-after-ms": "1e308", "retry-after": "5"}),
        ProviderError(status=429, headers={"x-ratelimit-reset-tokens": "9" * 400 + "s"}),
        ProviderError(status=429, message="Please try again in " + "9" * 400 + "s."),
        ProviderError(status=429, message="Please wait " + "9" * 400 + " minutes."),
        ProviderError(status=429, message="Retry after " + "9" * 400 + " hours"),
    ],
)
def test_a_stated_wait_too_large_for_a_number_is_a_day(error: ProviderError) -> None:
    assert stated_wait_ms(error) == 86_400_000
