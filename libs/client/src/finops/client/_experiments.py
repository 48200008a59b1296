"""Asking the experiments service for a unit's variant: a few retries, then a clear error."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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


async def assignment(
    http: httpx.AsyncClient,
    tokens: Tokens,
    experiments_url: str,
    experiment_id: str,
    unit: str,
    max_backoff_s: float,
) -> dict[str, Any]:
    """``GET /api/experiments/{id}/assignment``; transient faults retried ``ATTEMPTS`` times."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Transient),
        wait=RetryAfterOrJitter(max_backoff_s),
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _ask(http, tokens, experiments_url, experiment_id, unit)
    except Transient as exc:
        raise PlatformUnavailable(
            f"no answer from the experiments service at {experiments_url} after {ATTEMPTS} "
            f"attempts ({exc.reason}); is it running, and is experiments_url right?"
        ) from exc
    raise AssertionError("unreachable")


async def _ask(
    http: httpx.AsyncClient, tokens: Tokens, experiments_url: str, experiment_id: str, unit: str
) -> dict[str, Any]:
    token = await tokens.bearer()
    # one path segment whatever the id holds: "x?unit=y" or "../x" cannot reach another route
    url = f"{experiments_url}/api/experiments/{quote(experiment_id, safe='')}/assignment"
    try:
        resp = await http.get(
            url, params={"unit": unit}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.TransportError as exc:
        raise Transient(transport_reason(exc)) from exc
    if resp.status_code == 200:
        tokens.accepted()
        return dict(resp.json())
    if resp.status_code in RETRYABLE_STATUS:
        raise Transient(f"HTTP {resp.status_code}", retry_after(resp))
    if resp.status_code == 401:
        tokens.refused("the experiments service", experiments_url, resp)
    if points_elsewhere(resp):
        raise wrong_place("experiments", url, resp)
    raise RequestRefused(
        f"the experiments service at {experiments_url}: {describe(resp)}",
        status=resp.status_code,
        code=error_of(resp)[0],
        url=url,
    )
