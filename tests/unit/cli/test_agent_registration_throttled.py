"""`finops simulate` registers every agent from one address: a registration the auth service
throttles (429) is sent again after its Retry-After, said on stderr, a bounded number of
times, then one line of error, not a traceback."""

from __future__ import annotations

import json

import httpx
import pytest

from finops.cli.accounts import REGISTRATION_RETRIES, agent_api_key
from finops.cli.failures import CliError


class Stack:
    def service_url(self, name: str) -> str:
        return "http://auth.test"


class Auth:
    """An auth service that throttles the first ``throttled`` registrations."""

    def __init__(self, throttled: int, retry_after: str = "37") -> None:
        self.throttled = throttled
        self.retry_after = retry_after
        self.registrations = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/register":
            self.registrations += 1
            if self.registrations <= self.throttled:
                error = {"code": "too_many_registrations", "message": "slow down"}
                return httpx.Response(
                    429, headers={"Retry-After": self.retry_after}, json={"error": error}
                )
            name = json.loads(request.content)["username"]
            return httpx.Response(201, json={"id": "u-1", "username": name})
        assert request.url.path == "/api/auth/api-keys"
        return httpx.Response(201, json={"key": "fo_key"})


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_a_throttled_registration_waits_its_retry_after_and_goes_on():
    # It raised httpx.HTTPStatusError: two runs of 40 agents within a minute ended in a
    # traceback at the 61st registration.
    auth, sleeps, lines = Auth(throttled=2), Sleeps(), []
    key = await agent_api_key(
        Stack(),
        "operator-token",
        "sim-agent-7",
        warn=lines.append,
        sleep=sleeps,
        transport=httpx.MockTransport(auth),
    )
    assert key == "fo_key"
    assert sleeps.waits == [37, 37]
    assert auth.registrations == 3
    assert (
        lines
        == [
            "the auth service throttles registrations (too_many_registrations): registering"
            " agent sim-agent-7 again in 37 s"
        ]
        * 2
    )


async def test_a_missing_retry_after_waits_a_second_and_a_long_one_is_bounded():
    sleeps = Sleeps()
    await agent_api_key(
        Stack(), "t", "a", sleep=sleeps, transport=httpx.MockTransport(Auth(1, "soon"))
    )
    await agent_api_key(
        Stack(), "t", "b", sleep=sleeps, transport=httpx.MockTransport(Auth(1, "3600"))
    )
    assert sleeps.waits == [1, 65]


async def test_a_registration_throttled_every_time_is_one_line_of_error():
    auth, sleeps = Auth(throttled=10**6), Sleeps()
    with pytest.raises(CliError) as refused:
        await agent_api_key(
            Stack(), "t", "sim-agent-3", sleep=sleeps, transport=httpx.MockTransport(auth)
        )
    assert auth.registrations == REGISTRATION_RETRIES + 1
    assert len(sleeps.waits) == REGISTRATION_RETRIES
    message = str(refused.value)
    assert "\n" not in message
    assert "sim-agent-3" in message and "too_many_registrations" in message
