"""The events a self-healing call queues (:class:`CallReports`): the ``agent.error`` of each
failed attempt (:func:`error_data`; the one it gives up after tagged with its experiment),
its give-up when it ends otherwise, and its successful ``agent.llm_call`` with the usage
(:func:`usage_of`) and quality read from the agent's result; ``on_reported`` is told each."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from finops.client._call_options import CallOptions
from finops.client._call_state import CallState, LastError, time_now
from finops.client._event_data import experiment_tag
from finops.client._failures import Failure, _get
from finops.client._json_values import json_values
from finops.client.errors import FinOpsError

log = logging.getLogger("finops.client")


def error_data(state: CallState, failure: Failure, agent_id: str) -> dict[str, Any]:
    """The ``data`` of the ``agent.error`` event for ``failure`` (also the advice request)."""
    error: dict[str, Any] = {"message": failure.message}
    if failure.transport and failure.status is None:
        error["kind"] = "timeout" if "imeout" in failure.message else "network"
    optional = {
        "status_code": failure.status,
        "type": failure.error_type,
        "provider_code": failure.provider_code,
        "headers": failure.headers or None,
    }
    error.update({k: v for k, v in optional.items() if v is not None})
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "task_type": state.task_type,
        "provider": state.provider,
        "model": state.model,
        "error": error,
        "attempt": state.attempt,
    }
    request = {"input_tokens": state.input_tokens, "max_tokens": state.max_tokens}
    if any(v is not None for v in request.values()):
        data["request"] = {k: v for k, v in request.items() if v is not None}
    if state.advice_id:
        data["remedy"] = {"advice_id": state.advice_id}
    return data


def usage_of(result: Any, extract: Callable[[Any], Mapping[str, Any]] | None) -> dict[str, Any]:
    """The call's usage: the agent's extractor, else ``result.usage`` (a pydantic model, a
    dict or an object), else zero tokens."""
    if extract is not None:
        return dict(extract(result))
    usage = _get(result, "usage")
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    if hasattr(usage, "model_dump"):
        return dict(usage.model_dump(exclude_none=True))
    if isinstance(usage, Mapping):
        return dict(usage)
    return {k: v for k, v in vars(usage).items() if isinstance(v, int)}


class Enqueue(Protocol):
    """The client's :meth:`~finops.client._delivery.Delivery.enqueue`: queue an event
    (``time``: its time, default now; ``wait=False``: without waiting for room in the
    buffer); its id."""

    def __call__(
        self,
        event_type: str,
        data: dict[str, Any],
        event_id: str | None,
        *,
        time: str | None = None,
        wait: bool = True,
    ) -> Awaitable[str]: ...


#: the ``data`` of the ``agent.llm_call`` event record_call queues, from the same arguments
CallData = Callable[..., dict[str, Any]]


class CallReports:
    """What one self-healing call queues through the client and tells its agent
    (``on_reported``); :class:`~finops.client._healing.SelfHealingCall` says when."""

    def __init__(
        self, enqueue: Enqueue, call_data: CallData, state: CallState, options: CallOptions
    ) -> None:
        self.enqueue = enqueue
        self.call_data = call_data
        self.state = state
        self.options = options

    def reported(self, event_id: str) -> None:
        on_reported = self.options.get("on_reported")
        if on_reported is not None:
            on_reported(event_id)

    def reported_at_end(self, event_id: str) -> None:
        """:meth:`reported` while the call ends on another exception, which stands: an
        ``on_reported`` that raises is logged."""
        try:
            self.reported(event_id)
        except Exception:
            log.exception("on_reported(%r) raised; the event was queued", event_id)

    def queue_error(
        self, data: dict[str, Any], last: LastError, *, wait: bool = True
    ) -> Awaitable[str]:
        """Queue ``data`` as the ``agent.error`` of ``last`` (its event id and time)."""
        return self.enqueue("agent.error", data, last.event_id, time=last.time, wait=wait)

    def given_up(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` of the error the call gives up after: tagged with the call's experiment
        assignment, if any (intention-to-treat: the experiment counts a failure of the
        variant)."""
        experiment = self.options.get("experiment")
        return {**data, "experiment": experiment_tag(experiment)} if experiment else data

    async def give_up_at_end(self, last: LastError) -> None:
        """Queue ``last`` as the give-up of a call that ended otherwise
        (:meth:`~finops.client._healing.SelfHealingCall.ended`): never waiting for room in
        the buffer, raising nothing but its own cancellation; what cannot be queued is
        logged."""
        try:
            event_id = await self.queue_error(self.given_up(last.data), last, wait=False)
        except Exception as exc:
            log.error(
                "the call to %s/%s ended after an error; it could not be queued as the"
                " call's give-up: %s",
                self.state.provider,
                self.state.model,
                exc,
            )
            return
        self.reported_at_end(event_id)

    def success_arguments(
        self, usage: Mapping[str, Any], latency_ms: float, quality: float | None
    ) -> dict[str, Any]:
        """record_call's arguments for the successful call: its experiment assignment
        always (the experiment counts every call assigned to a variant, whatever model it
        ended on), its decision only when it ran on the model first asked (the optimizer did
        not choose a fallback's model)."""
        options, state = self.options, self.state
        tags: dict[str, Any] = {"experiment": options.get("experiment")}
        if state.on_first_arm:
            tags["decision"] = options.get("decision")
            tags["config"] = options.get("config")  # None: the experiment's, if any
        elif tags["experiment"] or options.get("config"):
            # the variant's (or the recommendation's) config is not the call's after a
            # fallback: the fallback model's outcome is learned under the default config
            tags["config"] = {}
        return {
            "task_type": state.task_type,
            "provider": state.provider,
            "model": state.model,
            "usage": usage,
            "latency_ms": latency_ms,
            "quality": quality,
            "team": options.get("team"),
            "project": options.get("project"),
            "features": options.get("features"),
            "remedy": {"advice_id": state.advice_id} if state.advice_id else None,
            **tags,
        }

    async def succeeded(self, result: Any, latency_ms: float) -> None:
        """Report the successful call. The agent's call has run (and was paid for): nothing
        here raises but a cancellation, so its answer is never lost; a usage or quality that
        cannot be sent is logged and left out of the report, and a report that cannot be
        queued is logged. Cancelled while its report waits for room in the buffer, the
        report is queued without waiting, as a give-up's is (:meth:`give_up_at_end`)."""
        arguments = self.success_arguments(self._usage(result), latency_ms, self._quality(result))
        event_id = self.options.get("event_id") or str(uuid.uuid4())
        at = time_now()
        try:
            data = self.call_data(**arguments)
            try:
                await self.enqueue("agent.llm_call", data, event_id, time=at)
            except asyncio.CancelledError:
                try:
                    await self.enqueue("agent.llm_call", data, event_id, time=at, wait=False)
                except (FinOpsError, ValueError) as exc:
                    self.report_lost(exc)
                else:
                    self.reported_at_end(event_id)
                raise
        except (FinOpsError, ValueError) as exc:
            self.report_lost(exc)
            return
        self.reported(event_id)

    def report_lost(self, exc: BaseException) -> None:
        """Log a successful call whose report could not be queued (the client closed, or its
        buffer full under ``overflow="raise"``, while the agent's call ran)."""
        log.error(
            "the call to %s/%s succeeded but was not reported: %s",
            self.state.provider,
            self.state.model,
            exc,
        )

    def _usage(self, result: Any) -> dict[str, Any]:
        """The usage to report: its entries JSON carries (numpy's numbers as plain ones)."""
        try:
            usage = usage_of(result, self.options.get("usage"))
        except Exception:
            log.exception("usage() raised on the call's result; it is reported with no tokens")
            return {"input_tokens": 0, "output_tokens": 0}
        kept: dict[str, Any] = {}
        for name, value in usage.items():
            try:
                kept.update(json_values({name: value}, "usage"))
            except ValueError as exc:
                log.error("the call is reported without it: %s", exc)
        return kept

    def _quality(self, result: Any) -> float | None:
        """The quality to report, or None (left out) when it cannot be had or sent."""
        quality = self.options.get("quality")
        try:
            value = quality(result) if callable(quality) else quality
        except Exception:
            log.exception("quality() raised on the call's result; it is reported without one")
            return None
        try:
            plain: float | None = json_values(value, "quality")
        except ValueError as exc:
            log.error("the call is reported without its quality: %s", exc)
            return None
        return plain
