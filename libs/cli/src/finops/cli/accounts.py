"""Accounts a command makes on a local stack: an operator (written to the database, as
``finops users create`` does, then logged in) and agents with an API key each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from finops.cli.failures import CliError

#: How many times a registration the auth service throttled (429) is sent again, and the
#: longest wait before one: a client's registrations are counted per minute
#: (FINOPS_REGISTRATION_MAX_PER_ADDRESS, 60 by default), and all of a local run's agents
#: register from one address.
REGISTRATION_RETRIES = 4
LONGEST_REGISTRATION_WAIT_S = 65.0


async def operator_token(stack: Any) -> str:
    """A new operator's access token; ``stack`` has ``database_url`` and ``service_url()``."""
    from finops.auth.admin import create_user
    from finops.auth.settings import AuthSettings
    from finops.common.auth.scopes import Role

    name = "demo-operator-" + uuid.uuid4().hex[:6]
    password = "demo operator " + uuid.uuid4().hex
    await create_user(
        AuthSettings(database_url=stack.database_url),
        name,
        f"{name}@example.com",
        password,
        Role.OPERATOR,
    )
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as http:
        resp = await http.post("/api/auth/login", json={"login": name, "password": password})
        resp.raise_for_status()
        return str(resp.json()["access_token"])


async def agent_api_key(
    stack: Any,
    operator: str,
    name: str,
    *,
    warn: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Register the agent ``name`` and have the operator make it an API key.

    A registration the auth service throttles (429: this address used its registrations of
    the minute, or its hash slots are busy) is sent again after the ``Retry-After`` it
    names, said with ``warn``, up to :data:`REGISTRATION_RETRIES` times; then a
    :class:`CliError`.
    """
    password = "demo agent " + uuid.uuid4().hex
    async with httpx.AsyncClient(
        base_url=stack.service_url("auth"), timeout=30, transport=transport
    ) as http:
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        retrying = AsyncRetrying(
            retry=retry_if_result(_throttled),
            wait=_retry_after,
            stop=stop_after_attempt(REGISTRATION_RETRIES + 1),
            sleep=sleep,
            before_sleep=lambda state: warn(_waiting(name, state)),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        user: httpx.Response = await retrying(http.post, "/api/auth/register", json=body)
        if _throttled(user):
            raise CliError(
                f"the auth service still refused to register agent {name} after"
                f" {REGISTRATION_RETRIES} waits ({_code(user)}): it allows"
                " FINOPS_REGISTRATION_MAX_PER_ADDRESS registrations a minute from one"
                " address; wait a minute, or run fewer agents"
            )
        user.raise_for_status()
        key = await http.post(
            "/api/auth/api-keys",
            json={"name": f"{name} key", "user_id": user.json()["id"]},
            headers={"Authorization": f"Bearer {operator}"},
        )
        key.raise_for_status()
        return str(key.json()["key"])


def _throttled(response: httpx.Response) -> bool:
    return response.status_code == 429


def _retry_after(state: RetryCallState) -> float:
    """The wait the throttled answer names (``Retry-After`` in seconds), at least 1 s."""
    assert state.outcome is not None
    header = state.outcome.result().headers.get("retry-after", "")
    try:
        seconds = float(header)
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 1.0), LONGEST_REGISTRATION_WAIT_S)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _waiting(name: str, state: RetryCallState) -> str:
    assert state.outcome is not None and state.next_action is not None
    return (
        f"the auth service throttles registrations ({_code(state.outcome.result())}):"
        f" registering agent {name} again in {state.next_action.sleep:.0f} s"
    )
