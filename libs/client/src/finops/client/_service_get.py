"""Asking a platform service a question (a recommendation, an experiment's variant): a few
retries of transient faults, then a clear error naming the service and the client option
that points at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from finops.client._answers import (
    RETRYABLE_STATUS,
    UNUSABLE_URL,
    RetryAfterOrJitter,
    Transient,
    body,
    describe,
    error_of,
    points_elsewhere,
    retry_after,
    tls_refusal,
    transient_status,
    transport_reason,
    unusable_url,
    wrong_place,
)
from finops.client._tokens import Tokens
from finops.client.errors import PlatformUnavailable, RequestRefused

ATTEMPTS = 5


@dataclass(frozen=True)
class ServiceAt:
    """A service the SDK asks, as its errors name it."""

    title: str  # in sentences: "the optimizer"
    kind: str  # the service's name in an answer from the wrong one: "optimizer"
    url: str  # its base URL
    option: str  # the client's option that holds ``url``


async def get_json(
    http: httpx.AsyncClient,
    tokens: Tokens,
    service: ServiceAt,
    path: str,
    params: dict[str, Any],
    max_backoff_s: float,
) -> dict[str, Any]:
    """``GET`` ``path`` (percent-encoded by the caller) of ``service``: its JSON answer;
    transient faults retried :data:`ATTEMPTS` times in all, then
    :class:`PlatformUnavailable`; a refusal raises :class:`RequestRefused` at once."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Transient),
        wait=RetryAfterOrJitter(max_backoff_s),
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _ask(http, tokens, service, f"{service.url}{path}", params)
    except Transient as exc:
        if exc.auth_url:  # the token, not the service asked: name the one to check
            raise PlatformUnavailable(
                f"no token from the auth service at {exc.auth_url} to ask {service.title} at "
                f"{service.url}, after {ATTEMPTS} attempts ({exc.fault}); is auth running, "
                "and is auth_url right?"
            ) from exc
        raise PlatformUnavailable(
            f"no answer from {service.title} at {service.url} after {ATTEMPTS} attempts "
            f"({exc.reason}); is it running, and is {service.option} right?"
        ) from exc
    raise AssertionError("unreachable")


async def _ask(
    http: httpx.AsyncClient, tokens: Tokens, service: ServiceAt, url: str, params: dict[str, Any]
) -> dict[str, Any]:
    token = await tokens.bearer()
    try:
        resp = await http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
    except UNUSABLE_URL as exc:
        raise unusable_url(service.kind, url, exc) from exc
    except httpx.TransportError as exc:
        raise tls_refusal(service.kind, url, exc) or Transient(transport_reason(exc)) from exc
    if resp.status_code == 200:
        tokens.accepted()
        answer = body(resp)
        if isinstance(answer, dict):
            return answer
        raise RequestRefused(
            f"{service.title} at {service.url} answered 200 with a body that is not a JSON "
            f"object: is {service.option} the {service.kind} service's address?",
            status=resp.status_code,
            code=None,
            url=url,
        )
    if resp.status_code in RETRYABLE_STATUS:
        raise Transient(transient_status(resp), retry_after(resp))
    if resp.status_code == 401:
        tokens.refused(service.title, service.url, resp)
    if points_elsewhere(resp):
        raise wrong_place(service.kind, url, resp)
    raise RequestRefused(
        f"{service.title} at {service.url}: {describe(resp)}",
        status=resp.status_code,
        code=error_of(resp)[0],
        url=url,
    )
