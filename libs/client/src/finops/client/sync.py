"""A blocking wrapper for agents that are not async: the async client on its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, Unpack

from finops.client._healing import CallOptions
from finops.client.client import AsyncFinOpsClient, ClientStats

T = TypeVar("T")


class FinOpsClient:
    """Same arguments and methods as :class:`AsyncFinOpsClient`, but blocking.

    Example::

        with FinOpsClient(api_key="fo_ak_...", agent_id="bot") as finops:
            finops.record_call(task_type="qa", provider="openai", model="gpt-4o-mini",
                               usage={"input_tokens": 10, "output_tokens": 5}, latency_ms=300)
    """

    def __init__(self, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="finops-client", daemon=True
        )
        self._thread.start()
        self._client: AsyncFinOpsClient = self._run(self._make(kwargs))

    @staticmethod
    async def _make(kwargs: dict[str, Any]) -> AsyncFinOpsClient:
        return AsyncFinOpsClient(**kwargs)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def record_call(self, **kwargs: Any) -> str:
        return self._run(self._client.record_call(**kwargs))

    def record_error(self, **kwargs: Any) -> str:
        return self._run(self._client.record_error(**kwargs))

    def call(self, fn: Callable[..., Any], **options: Unpack[CallOptions]) -> Any:
        """:meth:`AsyncFinOpsClient.call` (same options) for a blocking ``fn`` and ``trim``:
        they run on the calling thread, the reporting and advice on the client's."""
        healing = self._client._self_healing(options)
        clock = options.get("clock")
        while True:
            began = healing.clock.now()
            try:
                result = fn(**healing.state.arguments())
            except Exception as exc:
                step = self._run(healing.after_failure(exc))
                if step.give_up:
                    raise
                if healing.trim is not None and step.trim_to is not None:
                    healing.trim(step.trim_to)
                if clock is None:
                    time.sleep(step.delay_s)
                else:  # the agent's clock: a blocking sleep, or a coroutine run to its end
                    waited = clock.sleep(step.delay_s)
                    if asyncio.iscoroutine(waited):
                        self._run(waited)
                continue
            self._run(healing.succeeded(result, (healing.clock.now() - began) * 1000.0))
            return result

    def recommend(self, task_type: str, features: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self._run(self._client.recommend(task_type, features, **kwargs))

    def assign(self, experiment_id: str, unit: str) -> dict[str, Any]:
        return self._run(self._client.assign(experiment_id, unit))

    def flush(self, timeout: float | None = None) -> None:
        self._run(self._client.flush(timeout))

    def close(self, timeout: float | None = None) -> None:
        if not self._loop.is_running():
            return
        try:
            self._run(self._client.close(timeout))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def pending(self) -> int:
        return self._client.pending

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def __enter__(self) -> FinOpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
