"""The agent SDK: report every LLM call and error, batched in the background, nothing lost.

Delivery guarantee: every event handed to :meth:`AsyncFinOpsClient.record_call` or
:meth:`~AsyncFinOpsClient.record_error` is delivered at least once, unless the platform
rejects it as invalid (:class:`EventsRejected`, raised by ``flush()``/``close()`` or given to
``on_rejected``) or the buffer overflows under the ``drop_oldest`` policy (counted in
``stats.dropped``). Transient faults (HTTP 429, 5xx, connection errors, timeouts) are retried
with exponential backoff and full jitter, for as long as the client is open, each retry
logged as a warning; :meth:`~AsyncFinOpsClient.close` waits for delivery. Answers that
retrying cannot fix (a wrong or revoked API key, a URL that points at another server, a
missing scope) stop delivery at once: the events stay pending and every later ``record_*``,
``flush()`` and ``close()`` raises :class:`RequestRefused` saying what to fix.

Overflow policy (``overflow=``): ``"block"`` (default) makes ``record_*`` wait for room, so
back-pressure reaches the agent and nothing it records is dropped (the report of a ``call()``
that ends, cancelled, never waits: it takes a bounded reserve past the buffer, and is dropped,
logged and counted once that is full); ``"drop_oldest"`` discards the oldest pending event;
``"raise"`` raises :class:`BufferFull`.

Addresses and the API key default to ``FINOPS_INGEST_URL``, ``FINOPS_AUTH_URL``,
``FINOPS_OPTIMIZER_URL`` and ``FINOPS_API_KEY``, then to the local stack's ports.

Example::

    async with AsyncFinOpsClient(api_key="fo_ak_...", agent_id="support-bot") as finops:
        await finops.record_call(
            task_type="summarize", provider="openai", model="gpt-4o-mini",
            usage={"input_tokens": 1200, "output_tokens": 300}, latency_ms=850,
        )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from finops.client import _settings
from finops.client._advice import Healing
from finops.client._call_options import CallOptions
from finops.client._delivery import Delivery
from finops.client._event_data import (
    call_data,
    error_event_data,
    feature_parameter,
    feature_value,
    lower_cased,
)
from finops.client._healing import SelfHealingCall, heal
from finops.client._ingest import IngestPoster, OnRejected
from finops.client._queue import EventQueue, Overflow
from finops.client._service_get import ServiceAt, get_json
from finops.client._tokens import Tokens
from finops.client.errors import (
    BufferFull,
    ClientClosed,
    EventsRejected,
    FinOpsError,
    PlatformUnavailable,
    RequestRefused,
)


@dataclass
class ClientStats:
    recorded: int = 0
    delivered: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0
    batches: int = 0


class AsyncFinOpsClient:
    """Asynchronous client for agents. Use as ``async with`` or call :meth:`close`.

    ``agent_id``: the agent the events report as (its account's username).
    ``api_key`` (``fo_ak_…``, exchanged for short-lived tokens and renewed; default
    ``FINOPS_API_KEY``) or ``token`` (a fixed bearer token): one is required.
    ``ingest_url``, ``auth_url``, ``optimizer_url``, ``experiments_url``, ``healer_url``: the
    services' addresses (default ``FINOPS_<SERVICE>_URL``, else the local stack's ports).
    ``batch_size`` (500): events per request to ingest; ``linger_s`` (0.2): how long a
    batch waits to fill. ``max_buffer`` (100,000; ``math.inf``: unbounded): events pending
    at most; ``overflow`` (``"block"``, ``"drop_oldest"`` or ``"raise"``): what ``record_*``
    does when it is full. ``request_timeout_s`` (10; an ``httpx.Timeout``, or None: no
    timeout): each request's timeout; ``max_backoff_s`` (30; 0: none): the longest wait
    between two retries. ``on_rejected``: called with the events ingest refuses as
    invalid and its answer (default: :meth:`flush` and :meth:`close` raise
    :class:`EventsRejected`). ``transport``: an ``httpx`` transport (tests, proxies).
    A value out of range is a ``ValueError`` naming it.
    """

    def __init__(
        self,
        *,
        agent_id: str,
        ingest_url: str | None = None,
        auth_url: str | None = None,
        optimizer_url: str | None = None,
        experiments_url: str | None = None,
        healer_url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        batch_size: int = 500,
        linger_s: float = 0.2,
        max_buffer: float = 100_000,
        overflow: Overflow = "block",
        request_timeout_s: float | httpx.Timeout | None = 10.0,
        max_backoff_s: float = 30.0,
        on_rejected: OnRejected | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        api_key = _settings.api_key(api_key, token)
        _settings.overflow(overflow)
        batch_size = int(_settings.count("batch_size", batch_size))
        max_buffer = _settings.count("max_buffer", max_buffer, unbounded=True)
        linger_s = _settings.seconds("linger_s", linger_s, zero=True)
        timeout = _settings.request_timeout(request_timeout_s)
        max_backoff_s = _settings.seconds("max_backoff_s", max_backoff_s, zero=True)
        self.ingest_url = _settings.url(ingest_url, "ingest")
        self.auth_url = _settings.url(auth_url, "auth")
        self.optimizer_url = _settings.url(optimizer_url, "optimizer")
        self.experiments_url = _settings.url(experiments_url, "experiments")
        self.healer_url = _settings.url(healer_url, "healer")
        self.agent_id = agent_id
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_buffer = max_buffer
        self.overflow = overflow
        self.max_backoff_s = max_backoff_s
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._tokens = Tokens(self._http, self.auth_url, agent_id, api_key=api_key, token=token)
        self._ingest = IngestPoster(
            self._http, self.ingest_url, self._tokens, self.stats, on_rejected
        )
        self._healing = Healing(self._http, self._tokens, self.healer_url, max_backoff_s)
        self._queue = EventQueue(
            self._ingest,
            self.ingest_url,
            batch_size=batch_size,
            linger_s=linger_s,
            max_buffer=max_buffer,
            overflow=overflow,
            max_backoff_s=max_backoff_s,
        )
        self._delivery = Delivery(self._queue, self._http)

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
        experiment: Mapping[str, Any] | None = None,
        decision: Mapping[str, Any] | None = None,
        remedy: Mapping[str, str] | None = None,
        features: Mapping[str, float] | None = None,
        event_id: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Queue one ``agent.llm_call`` event; returns its id (the dedupe key).

        ``experiment`` may be what :meth:`assign` answered; its ``config`` is then the call's
        unless ``config`` says otherwise (the optimizer learns, and pins a winner, per model
        and config: without it the experiment's calls were learned as the default config).
        """
        data = call_data(
            self.agent_id,
            task_type=task_type,
            provider=provider,
            model=model,
            usage=usage,
            latency_ms=latency_ms,
            success=success,
            quality=quality,
            cost_usd=cost_usd,
            config=config,
            ttft_ms=ttft_ms,
            team=team,
            project=project,
            experiment=experiment,
            decision=decision,
            remedy=remedy,
            features=features,
            agent_id=agent_id,
        )
        return await self._delivery.enqueue("agent.llm_call", data, event_id)

    def _call_data(self, **fields: Any) -> dict[str, Any]:
        """:func:`call_data` of this client's agent (what :meth:`call` reports)."""
        return call_data(self.agent_id, **fields)

    async def record_error(
        self,
        *,
        task_type: str,
        provider: str,
        model: str,
        kind: str | None = None,
        message: str = "",
        status_code: int | None = None,
        error_type: str | None = None,
        provider_code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after_ms: float | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        attempt: int = 1,
        remedy: Mapping[str, str] | None = None,
        event_id: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Queue one ``agent.error`` event; returns its id.

        ``kind`` is only the agent's hint (the healer classifies every error itself from the
        status, the provider's ``error_type``/``provider_code``, the message and ``headers``
        such as ``retry-after``). ``headers`` names are sent lower-cased; two names that differ
        only in case are one header given twice, which ingest refuses: a :class:`ValueError`
        names them and nothing is queued.
        """
        data = error_event_data(
            agent_id or self.agent_id,
            task_type=task_type,
            provider=provider,
            model=model,
            error={
                "kind": kind,
                "message": message,
                "status_code": status_code,
                "type": error_type,
                "provider_code": provider_code,
                "headers": lower_cased(headers) if headers else None,
                "retry_after_ms": retry_after_ms,
            },
            request={"input_tokens": input_tokens, "max_tokens": max_tokens},
            attempt=attempt,
            remedy=remedy,
        )
        return await self._delivery.enqueue("agent.error", data, event_id)

    async def call(self, fn: Callable[..., Any], **options: Unpack[CallOptions]) -> Any:
        """Run the agent's LLM call ``fn`` and heal its failures; returns what ``fn`` returns.

        Options (:class:`~finops.client._healing.CallOptions`): ``task_type``,
        ``provider``, ``model`` (required); ``params``, ``trim``, ``input_tokens``,
        ``max_tokens``, ``usage``, ``max_attempts`` (5), ``budget_s`` (120), ``quality``,
        ``team``, ``project``, ``event_id``, ``decision``, ``experiment``, ``features``,
        ``config``, ``clock``, ``on_reported``; another is a ``TypeError`` naming them.

        ``fn(provider=..., model=..., **params)`` makes the call (sync or async). On an
        exception the SDK reports the ``agent.error``, asks the healer for advice and applies
        it: waits its ``delay_ms``, switches ``provider``/``model`` (fallback), merges its
        ``params`` (repair), or calls ``trim(max_input_tokens)`` so the agent shortens its
        prompt; then calls ``fn`` again, within ``max_attempts`` calls and ``budget_s``
        seconds. The successful call is reported with ``remedy.advice_id``; an abort (or
        an exhausted budget) re-raises the last exception with a note saying why. When the
        healer is unreachable, 408/429/5xx, timeouts and connection errors get plain
        backoff and anything else is raised at once. ``usage(result)`` extracts the usage
        (default: ``result.usage``); ``event_id`` is the id of the reported successful call.
        ``quality`` is a number or a function of the result. ``decision`` (as for
        :meth:`record_call`) and ``config`` (the configuration the call is made with) tag
        the successful call only when it ran on the model first asked for: after a fallback
        the optimizer did not choose the model. ``experiment``
        tags every call made on the assignment (an experiment counts each in its variant):
        the successful call, after a fallback too (without the variant's config), and the
        ``agent.error`` of the attempt after which the call gives up or ends otherwise
        (cancelled, interrupted: an error reported untagged already is sent again, the same
        event, tagged; cancelled or interrupted during its first attempt, the cancellation
        itself is that error; the cancellation is raised as it came). ``clock`` (``now()``
        in seconds, ``sleep(seconds)``; default real time) measures the latency and the time
        budget and does the waits: a simulation passes its simulated clock.
        ``on_reported(event_id)`` is told the id of every event queued.
        """
        return await heal(fn, self._self_healing(options))

    def _self_healing(self, options: CallOptions) -> SelfHealingCall:
        """The reporting and advice of one :meth:`call` (shared with the blocking twin)."""
        if self._queue.closing:  # before the agent's call runs (and is paid for)
            raise self._closed_error()
        return SelfHealingCall.start(
            self._healing,
            self._delivery.enqueue,
            self._call_data,
            self.agent_id,
            options,
        )

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
        policies can be evaluated off-policy. Transient faults are retried a few times, then
        :class:`PlatformUnavailable`; a refusal (e.g. 404 ``no_arms``: nothing known yet for
        this task type) raises :class:`RequestRefused` at once. ``seed`` (0 <= seed < 2**63)
        makes the optimizer's random draw reproducible: the same seed and task type against
        the same learned state give the same answer. ``features`` may have any names (as
        :meth:`record_call` takes them): one named like a parameter (``task_type``,
        ``agent_id``, ``team``, ``seed``) or starting ``feature.`` is sent as
        ``feature.<name>``, so it is a feature, never that parameter; the others under their
        own names, as every optimizer version reads them.
        """
        if self._delivery.closed:  # its connections are released
            raise self._closed_error()
        params: dict[str, Any] = {"task_type": task_type, "agent_id": self.agent_id}
        if team:
            params["team"] = team
        if seed is not None:
            params["seed"] = seed
        params.update(
            {feature_parameter(k): feature_value(k, v) for k, v in (features or {}).items()}
        )
        optimizer = ServiceAt("the optimizer", "optimizer", self.optimizer_url, "optimizer_url")
        return await get_json(
            self._http, self._tokens, optimizer, "/api/recommendations", params, self.max_backoff_s
        )

    async def assign(self, experiment_id: str, unit: str) -> dict[str, Any]:
        """The variant of a running experiment for ``unit`` (a user, a conversation...).

        Returns ``experiment_id``, ``variant``, ``model``, ``provider``, ``config`` and
        ``propensity``. Make the call with that model and configuration, then pass the answer
        as ``experiment=`` to :meth:`record_call` so the call counts for its variant. A fixed
        split always gives one unit the same variant. Transient faults are retried a few
        times, then :class:`PlatformUnavailable`; a refusal (409 ``experiment_not_running``)
        raises :class:`RequestRefused` at once.
        """
        if self._delivery.closed:  # its connections are released
            raise self._closed_error()
        experiments = ServiceAt(
            "the experiments service", "experiments", self.experiments_url, "experiments_url"
        )
        # one path segment whatever the id holds: "x?unit=y" or "../x" cannot reach another route
        path = f"/api/experiments/{quote(experiment_id, safe='')}/assignment"
        return await get_json(
            self._http, self._tokens, experiments, path, {"unit": unit}, self.max_backoff_s
        )

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the platform."""
        return self._delivery.pending

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event recorded so far is delivered (or rejected as invalid).

        Raises :class:`RequestRefused` when delivery stopped on a refusal, and
        :class:`EventsRejected` for the events refused as invalid since the last flush
        (unless ``on_rejected`` took them). Past ``timeout`` seconds, ``TimeoutError`` says
        how many are not delivered yet; delivery goes on.
        """
        if self._delivery.closed:  # no sender left: nothing more is delivered
            raise self._closed_error()
        await self._delivery.flush(timeout)

    def _closed_error(self) -> ClientClosed:
        """What a closed client raises when used (:meth:`Delivery.closed_error`)."""
        return self._delivery.closed_error()

    async def close(self, timeout: float | None = None) -> None:
        """Deliver everything pending, then release the connection. Once closed, the client
        raises :class:`ClientClosed` from every call but ``close()`` (which returns)."""
        await self._delivery.close(timeout)


__all__ = [
    "AsyncFinOpsClient",
    "BufferFull",
    "ClientClosed",
    "ClientStats",
    "EventsRejected",
    "FinOpsError",
    "Overflow",
    "PlatformUnavailable",
    "RequestRefused",
]
