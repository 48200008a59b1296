"""The agent SDK: report every LLM call and error, batched in the background, nothing lost.

Delivery guarantee: every event handed to :meth:`AsyncFinOpsClient.record_call` or
:meth:`~AsyncFinOpsClient.record_error` is delivered at least once, unless the platform
rejects it as invalid (reported through ``on_rejected``) or the buffer overflows under the
``drop_oldest`` policy (counted in ``stats.dropped``). Transient faults (HTTP 429, 5xx,
connection errors, timeouts) are retried with exponential backoff and full jitter, for as
long as the client is open; :meth:`~AsyncFinOpsClient.close` waits for delivery.

Overflow policy (``overflow=``): ``"block"`` (default) makes ``record_*`` wait for room, so
back-pressure reaches the agent and nothing is dropped; ``"drop_oldest"`` discards the oldest
pending event; ``"raise"`` raises :class:`BufferFull`.

Example::

    async with AsyncFinOpsClient(
        ingest_url="http://127.0.0.1:8002",
        auth_url="http://127.0.0.1:8001",
        api_key="fk_...",
        agent_id="support-bot",
    ) as finops:
        await finops.record_call(
            task_type="summarize", provider="openai", model="gpt-4o-mini",
            usage={"input_tokens": 1200, "output_tokens": 300}, latency_ms=850,
        )
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)

log = logging.getLogger("finops.client")

Overflow = Literal["block", "drop_oldest", "raise"]
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class BufferFull(RuntimeError):
    """The pending-event buffer is full and the overflow policy is ``"raise"``."""


class ClientClosed(RuntimeError):
    """The client was closed; it takes no more events."""


class _Transient(Exception):
    """A delivery fault worth retrying."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class ClientStats:
    recorded: int = 0
    delivered: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0
    batches: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat()


class AsyncFinOpsClient:
    """Asynchronous client for agents. Use as ``async with`` or call :meth:`close`."""

    def __init__(
        self,
        *,
        ingest_url: str,
        agent_id: str,
        auth_url: str | None = None,
        optimizer_url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        batch_size: int = 500,
        linger_s: float = 0.2,
        max_buffer: int = 100_000,
        overflow: Overflow = "block",
        request_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        on_rejected: Callable[[list[dict[str, Any]], Any], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not (api_key or token):
            raise ValueError("give an api_key (exchanged for tokens) or a bearer token")
        if api_key and not auth_url:
            raise ValueError("an api_key needs auth_url to exchange it for a token")
        if overflow not in ("block", "drop_oldest", "raise"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.ingest_url = ingest_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/") if auth_url else None
        self.optimizer_url = optimizer_url.rstrip("/") if optimizer_url else None
        self.agent_id = agent_id
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_buffer = max_buffer
        self.overflow = overflow
        self.max_backoff_s = max_backoff_s
        self.on_rejected = on_rejected
        self.stats = ClientStats()
        self._api_key = api_key
        self._token = token
        self._token_expires_at = float("inf") if token else 0.0
        self._http = httpx.AsyncClient(timeout=request_timeout_s, transport=transport)
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requested = False
        self._closing = False
        self._closed = False
        self._sender: asyncio.Task[None] | None = None

    # ---- public API --------------------------------------------------------------------

    async def __aenter__(self) -> AsyncFinOpsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def record_call(
        self,
        *,
        task_type: str,
        provider: str,
        model: str,
        usage: Mapping[str, Any],
        latency_ms: float,
        success: bool = True,
        quality: float | None = None,
        cost_usd: float | None = None,
        config: Mapping[str, Any] | None = None,
        ttft_ms: float | None = None,
        team: str | None = None,
        project: str | None = None,
        experiment: Mapping[str, str] | None = None,
        decision: Mapping[str, Any] | None = None,
        remedy: Mapping[str, str] | None = None,
        features: Mapping[str, float] | None = None,
        event_id: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Queue one ``agent.llm_call`` event; returns its id (the dedupe key)."""
        data: dict[str, Any] = {
            "agent_id": agent_id or self.agent_id,
            "task_type": task_type,
            "provider": provider,
            "model": model,
            "usage": dict(usage),
            "latency_ms": latency_ms,
            "success": success,
        }
        optional = {
            "quality": quality,
            "cost_usd": cost_usd,
            "config": dict(config) if config else None,
            "ttft_ms": ttft_ms,
            "team": team,
            "project": project,
            "experiment": dict(experiment) if experiment else None,
            "decision": dict(decision) if decision else None,
            "remedy": dict(remedy) if remedy else None,
            "features": dict(features) if features else None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return await self._enqueue("agent.llm_call", data, event_id)

    async def record_error(
        self,
        *,
        task_type: str,
        provider: str,
        model: str,
        kind: str,
        message: str = "",
        status_code: int | None = None,
        provider_code: str | None = None,
        retry_after_ms: float | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        attempt: int = 1,
        remedy: Mapping[str, str] | None = None,
        event_id: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Queue one ``agent.error`` event; returns its id."""
        error = {
            "kind": kind,
            "message": message,
            "status_code": status_code,
            "provider_code": provider_code,
            "retry_after_ms": retry_after_ms,
        }
        data: dict[str, Any] = {
            "agent_id": agent_id or self.agent_id,
            "task_type": task_type,
            "provider": provider,
            "model": model,
            "error": {k: v for k, v in error.items() if v is not None},
            "attempt": attempt,
        }
        if input_tokens is not None or max_tokens is not None:
            data["request"] = {
                k: v
                for k, v in {"input_tokens": input_tokens, "max_tokens": max_tokens}.items()
                if v is not None
            }
        if remedy:
            data["remedy"] = dict(remedy)
        return await self._enqueue("agent.error", data, event_id)

    async def recommend(
        self,
        task_type: str,
        features: Mapping[str, float] | None = None,
        *,
        team: str | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Ask the optimizer which model and configuration to use for ``task_type``.

        Returns its answer (``model``, ``provider``, ``config``, ``expected``,
        ``recommendation_id``, ``propensity``, ...). Pass ``decision=`` built from it to
        :meth:`record_call`, e.g. ``decision={"recommendation_id": r["recommendation_id"],
        "propensity": r["propensity"]}``, so the optimizer can learn from the outcome and
        policies can be evaluated off-policy. Retries transient faults like delivery does.
        ``seed`` (0 <= seed < 2**63) makes the optimizer's random draw reproducible: the same
        seed and task type against the same learned state give the same answer.
        """
        if not self.optimizer_url:
            raise ValueError("recommend() needs optimizer_url")
        params: dict[str, Any] = {"task_type": task_type, "agent_id": self.agent_id}
        if team:
            params["team"] = team
        if seed is not None:
            params["seed"] = seed
        params.update({k: float(v) for k, v in (features or {}).items()})
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            wait=_RetryAfterOrJitter(self.max_backoff_s),
            stop=stop_after_attempt(5),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                token = await self._bearer()
                try:
                    resp = await self._http.get(
                        f"{self.optimizer_url}/api/recommendations",
                        params=params,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError as exc:
                    raise _Transient(f"connection: {exc!r}") from exc
                if resp.status_code == 401 and self._api_key:
                    self._token_expires_at = 0.0
                    raise _Transient("token refused; renewing")
                if resp.status_code in RETRYABLE_STATUS:
                    raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))
                resp.raise_for_status()
                return dict(resp.json())
        raise AssertionError("unreachable")

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the platform."""
        return len(self._buffer) + self._in_flight

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event recorded so far is delivered (or rejected as invalid)."""
        if not self.pending:
            return
        self._flush_requested = True
        self._wakeup.set()
        await asyncio.wait_for(self._wait_idle(), timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Deliver everything pending, then release the connection."""
        if self._closed:
            return
        self._closing = True
        try:
            await self.flush(timeout)
        finally:
            self._closed = True
            if self._sender:
                self._sender.cancel()
                try:
                    await self._sender
                except asyncio.CancelledError:
                    pass
            await self._http.aclose()

    # ---- buffering ---------------------------------------------------------------------

    async def _enqueue(self, event_type: str, data: dict[str, Any], event_id: str | None) -> str:
        if self._closing:
            raise ClientClosed("the client is closed")
        event = {
            "id": event_id or str(uuid.uuid4()),
            "type": event_type,
            "source": data["agent_id"],
            "specversion": "1.0",
            "time": _now(),
            "data": data,
        }
        while len(self._buffer) >= self.max_buffer:
            if self.overflow == "raise":
                raise BufferFull(f"{self.max_buffer} events pending")
            if self.overflow == "drop_oldest":
                self._buffer.popleft()
                self.stats.dropped += 1
                break
            self._room.clear()
            self._wakeup.set()
            await self._room.wait()
        self._buffer.append(event)
        self._idle.clear()
        self.stats.recorded += 1
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="finops-client-sender")
        if len(self._buffer) >= self.batch_size:
            self._wakeup.set()
        return str(event["id"])

    async def _wait_idle(self) -> None:
        while self.pending:
            self._idle.clear()
            await self._idle.wait()

    async def _send_loop(self) -> None:
        while True:
            if not self._buffer:
                self._idle.set()
                self._flush_requested = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._buffer) < self.batch_size and not (self._flush_requested or self._closing):
                # Linger so small trickles still go out in batches.
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.linger_s)
                except TimeoutError:
                    pass
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            self._in_flight = len(batch)
            self._room.set()
            try:
                await self._deliver(batch)
            except Exception:
                log.exception("unexpected delivery failure; events requeued")
                self._buffer.extendleft(reversed(batch))
                await asyncio.sleep(1.0)
            finally:
                self._in_flight = 0
                if not self.pending:
                    self._idle.set()

    # ---- delivery ----------------------------------------------------------------------

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        while batch:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(_Transient),
                wait=_RetryAfterOrJitter(self.max_backoff_s),
                stop=stop_never,
                reraise=True,
                before_sleep=self._count_retry,
            )
            async for attempt in retrying:
                with attempt:
                    batch = await self._post(batch)

    def _count_retry(self, state: Any) -> None:
        self.stats.retries += 1
        log.info("delivery will be retried", extra={"error": repr(state.outcome.exception())})

    async def _post(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; return what still has to be sent (empty when done)."""
        token = await self._bearer()
        try:
            resp = await self._http.post(
                f"{self.ingest_url}/api/events",
                content=json.dumps(batch, separators=(",", ":")).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise _Transient(f"connection: {exc!r}") from exc
        if resp.status_code == 202:
            self.stats.delivered += len(batch)
            self.stats.batches += 1
            return []
        if resp.status_code == 401 and self._api_key:
            self._token_expires_at = 0.0  # exchange the key again
            raise _Transient("token refused; renewing")
        if resp.status_code in RETRYABLE_STATUS:
            raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code == 413 and len(batch) > 1:
            half = len(batch) // 2
            return (await self._post(batch[:half])) + (await self._post(batch[half:]))
        if resp.status_code == 422:
            return self._drop_invalid(batch, resp)
        self._reject(batch, _body(resp))
        return []

    def _drop_invalid(
        self, batch: list[dict[str, Any]], resp: httpx.Response
    ) -> list[dict[str, Any]]:
        body = _body(resp)
        details = (body.get("error") or {}).get("details") if isinstance(body, dict) else None
        bad = {d.get("index") for d in details or [] if isinstance(d, dict)}
        if not bad or None in bad:
            self._reject(batch, body)
            return []
        self._reject([e for i, e in enumerate(batch) if i in bad], body)
        return [e for i, e in enumerate(batch) if i not in bad]

    def _reject(self, events: list[dict[str, Any]], reason: Any) -> None:
        self.stats.rejected += len(events)
        log.error("events rejected by the platform", extra={"count": len(events), "reason": reason})
        if self.on_rejected:
            self.on_rejected(events, reason)

    async def _bearer(self) -> str:
        if self._token and time.monotonic() < self._token_expires_at - 30:
            return self._token
        if not self._api_key:
            assert self._token is not None
            return self._token
        try:
            resp = await self._http.post(
                f"{self.auth_url}/api/auth/token",
                data={"grant_type": "client_credentials", "client_secret": self._api_key},
            )
        except httpx.TransportError as exc:
            raise _Transient(f"auth connection: {exc!r}") from exc
        if resp.status_code in RETRYABLE_STATUS:
            raise _Transient(f"auth HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code != 200:
            raise _Transient(f"api key exchange refused: HTTP {resp.status_code} {resp.text[:200]}")
        body = resp.json()
        self._token = str(body["access_token"])
        self._token_expires_at = time.monotonic() + float(body.get("expires_in", 900))
        return self._token


class _RetryAfterOrJitter(wait_random_exponential):
    """Full-jitter exponential backoff that honours a server's Retry-After."""

    def __init__(self, max_s: float) -> None:
        super().__init__(multiplier=0.2, max=max_s)

    def __call__(self, retry_state: Any) -> float:
        backoff = float(super().__call__(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after else backoff


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return min(float(value), 60.0) if value else None
    except ValueError:
        return None


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


__all__ = [
    "AsyncFinOpsClient",
    "BufferFull",
    "ClientClosed",
    "ClientStats",
    "Overflow",
]
