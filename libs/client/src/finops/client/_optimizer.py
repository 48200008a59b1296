"""Asking the optimizer for a recommendation: a few retries, then a clear error."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from finops.client._answers import (
    RETRYABLE_STATUS,
    RetryAfterOrJitter,
    Transient,
    describe,
    error_of,
    points_elsewhere,
    retry_after,
    transport_reason,
    wrong_place,
)
from finops.client._tokens import Tokens
from finops.client.errors import PlatformUnavailable, RequestRefused

ATTEMPTS = 5


async def recommendation(
    http: httpx.AsyncClient,
    tokens: Tokens,
    optimizer_url: str,
    params: dict[str, Any],
    max_backoff_s: float,
) -> dict[str, Any]:
    """``GET /api/recommendations``; transient faults retried ``ATTEMPTS`` times in all."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Transient),
        wait=RetryAfterOrJitter(max_backoff_s),
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _ask(http, tokens, optimizer_url, params)
    except Transient as exc:
        raise PlatformUnavailable(
            f"no answer from the optimizer at {optimizer_url} after {ATTEMPTS} attempts "
            f"({exc.reason}); is it running, and is optimizer_url right?"
        ) from exc
    raise AssertionError("unreachable")


async def _ask(
    http: httpx.AsyncClient, tokens: Tokens, optimizer_url: str, params: dict[str, Any]
) -> dict[str, Any]:
    token = await tokens.bearer()
    url = f"{optimizer_url}/api/recommendations"
    try:
        resp = await http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError as exc:
        raise Transient(transport_reason(exc)) from exc
    if resp.status_code == 200:
        tokens.accepted()
        return dict(resp.json())
    if resp.status_code in RETRYABLE_STATUS:
        raise Transient(f"HTTP {resp.status_code}", retry_after(resp))
    if resp.status_code == 401:
        tokens.refused("the optimizer", optimizer_url, resp)
    if points_elsewhere(resp):
        raise wrong_place("optimizer", url, resp)
    raise RequestRefused(
        f"the optimizer at {optimizer_url}: {describe(resp)}",
        status=resp.status_code,
        code=error_of(resp)[0],
        url=url,
    )
