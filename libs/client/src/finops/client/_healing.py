"""Self-healing calls: read a failed LLM call, ask the healer, apply its remedy.

:class:`Healing` holds the decisions; :meth:`AsyncFinOpsClient.call` and its blocking twin
only run the loop (call, and on an exception: report, ask, apply, sleep, call again).

A provider exception is read duck-typed (:func:`read_failure`): ``.status_code``, ``.body``
and ``.response.headers`` (the openai and anthropic SDKs), ``.response`` of
``httpx.HTTPStatusError``, or a plain dict with ``status``/``body``/``headers``/``message``.
When the healer cannot be reached, or its answer is not advice the SDK can follow
(:func:`advice_fault`), the remedy is plain backoff (full jitter, honouring ``Retry-After``)
on 408/429/5xx, timeouts and connection errors, and the exception on anything else.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from finops.client._call_options import (
    REQUIRED_OPTIONS,
    CallOptions,
    Clock,
    Trim,
    WallClock,
    maybe_await,
    refuse_unknown_options,
)
from finops.client._failures import Failure, _get, read_failure
from finops.client._json_values import is_number, json_values
from finops.client._names import refuse_control_characters
from finops.client._tokens import Tokens
from finops.client.errors import FinOpsError

log = logging.getLogger("finops.client")

ADVICE_TIMEOUT_S = 2.0


def experiment_tag(experiment: Mapping[str, Any]) -> dict[str, str]:
    """``{id, variant}`` from a tag, or from what ``assign()`` answered."""
    if "experiment_id" in experiment:
        return {"id": str(experiment["experiment_id"]), "variant": str(experiment["variant"])}
    return {"id": str(experiment["id"]), "variant": str(experiment["variant"])}


@dataclass
class CallState:
    """Where a self-healing call stands: the model it uses now and what it changed."""

    task_type: str
    provider: str
    model: str
    params: dict[str, Any]
    input_tokens: int | None = None
    max_tokens: int | None = None
    attempt: int = 1
    advice_id: str | None = None
    #: the model and provider first asked for (a decision tag is about them)
    first_arm: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        self.first_arm = (self.provider, self.model)

    @property
    def on_first_arm(self) -> bool:
        return (self.provider, self.model) == self.first_arm

    def arguments(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, **self.params}


@dataclass(frozen=True)
class Step:
    """What to do after a failure: give up, or wait ``delay_s`` (after trimming to
    ``trim_to`` tokens through the agent's hook, when set) and call again."""

    give_up: bool
    delay_s: float = 0.0
    trim_to: int | None = None
    reason: str = ""


class Healing:
    """Asks the healer about failures and turns its advice into the next :class:`Step`."""

    def __init__(
        self, http: httpx.AsyncClient, tokens: Tokens, healer_url: str, max_backoff_s: float
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.healer_url = healer_url
        self.max_backoff_s = max_backoff_s
        self.rng = random.Random()

    async def advice(self, error_data: dict[str, Any]) -> dict[str, Any] | None:
        """The healer's advice, or ``None`` when it cannot be had (then: offline backoff)."""
        url = f"{self.healer_url}/api/healing/advice"
        try:
            token = await self.tokens.bearer()
            resp = await self.http.post(
                url,
                json=error_data,
                headers={"Authorization": f"Bearer {token}"},
                timeout=ADVICE_TIMEOUT_S,
            )
        except Exception as exc:  # the healer's absence must never break the agent's call
            log.warning("no advice from %s (%s); plain backoff", url, exc)
            return None
        if resp.status_code != 200:
            log.warning("no advice from %s (HTTP %s); plain backoff", url, resp.status_code)
            return None
        try:
            answer = resp.json()
        except ValueError:
            answer = resp.text[:200]
        fault = advice_fault(answer)
        if fault is not None:
            log.warning("the answer of %s is not advice (%s); plain backoff", url, fault)
            return None
        return dict(answer)

    def offline_step(self, failure: Failure, state: CallState) -> Step:
        if not failure.transient:
            return Step(True, reason="not retryable and the healer is unreachable")
        cap = min(self.max_backoff_s, 0.5 * 2 ** (state.attempt - 1))
        delay = max(self.rng.uniform(0, cap), failure.retry_after_s() or 0.0)
        return Step(False, delay, reason="plain backoff (the healer is unreachable)")

    def apply(self, advice: Mapping[str, Any], state: CallState, *, can_trim: bool) -> Step:
        """Change ``state`` as the advice says; the step tells the loop the rest."""
        remedy = advice["remedy"]
        action = remedy["action"]
        state.advice_id = str(advice["advice_id"])
        delay = float(remedy.get("delay_ms") or 0) / 1000.0
        if action == "abort" or (action == "trim" and not can_trim):
            return Step(True, reason=str(advice.get("reason", action)))
        if action == "fallback":
            state.provider, state.model = str(remedy["provider"]), str(remedy["model"])
        elif action == "repair":
            state.params.update(remedy.get("params") or {})
        elif action == "trim":
            state.input_tokens = int(remedy["max_input_tokens"])
            return Step(
                False, delay, trim_to=state.input_tokens, reason=str(advice.get("reason", action))
            )
        return Step(False, delay, reason=str(advice.get("reason", action)))


def advice_fault(answer: Any) -> str | None:
    """What keeps ``answer`` (a 200 of ``healer_url``) from being advice that
    :meth:`Healing.apply` can follow, or ``None`` when it is: another server's page, or a
    healer's answer missing what its action needs (a fallback's model), is no advice.

    >>> advice_fault({"advice_id": "a1", "remedy": {"action": "wait", "delay_ms": 500}})
    >>> advice_fault({"advice_id": "a1", "remedy": {"action": "fallback", "delay_ms": 0}})
    'a fallback names no provider and model'
    >>> advice_fault("<html>Sign in</html>")
    "not a JSON object: '<html>Sign in</html>'"
    """
    if not isinstance(answer, Mapping):
        return f"not a JSON object: {answer!r:.80}"
    remedy = answer.get("remedy")
    if not isinstance(answer.get("advice_id"), str) or not isinstance(remedy, Mapping):
        return "no advice_id and remedy"
    action = remedy.get("action")
    if not isinstance(action, str):
        return "the remedy has no action"
    delay_ms = remedy.get("delay_ms")
    if not (delay_ms is None or (is_number(delay_ms) and 0 <= delay_ms < math.inf)):
        return f"delay_ms {delay_ms!r} is not a number of milliseconds"
    if action == "fallback" and not (
        isinstance(remedy.get("provider"), str) and isinstance(remedy.get("model"), str)
    ):
        return "a fallback names no provider and model"
    tokens = remedy.get("max_input_tokens")
    if action == "trim" and not (is_number(tokens) and 1 <= tokens < math.inf):
        return f"a trim names no max_input_tokens (a count of at least 1), but {tokens!r}"
    if action == "repair" and not isinstance(remedy.get("params") or {}, Mapping):
        return "a repair's params are not an object"
    return None


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
    """The client's ``_enqueue``: queue an event (``time``: its time, default now;
    ``wait=False``: without waiting for room in the buffer); its id."""

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


@dataclass
class LastError:
    """The ``agent.error`` of a call's last failed attempt: its event id and time, fixed
    when the attempt failed, so that the error sent again is the same event."""

    event_id: str
    time: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """How far a self-healing call may go: attempts in all, and seconds from its start."""

    max_attempts: int = 5
    budget_s: float = 120.0


class SelfHealingCall:
    """One call's reporting and advice; the async and blocking loops share it."""

    @classmethod
    def start(
        cls,
        healing: Healing,
        enqueue: Enqueue,
        call_data: CallData,
        agent_id: str,
        options: CallOptions,
    ) -> SelfHealingCall:
        refuse_unknown_options(options)
        state = CallState(
            options["task_type"],
            options["provider"],
            options["model"],
            dict(options.get("params") or {}),
            options.get("input_tokens"),
            options.get("max_tokens"),
        )
        limits = Limits(options.get("max_attempts", 5), options.get("budget_s", 120.0))
        call = cls(healing, enqueue, call_data, agent_id, state, limits, options)
        # the successful call's event as record_call would build it (its names, tags, the
        # experiment's config; every error report carries a subset of those names), built
        # and refused before the agent's call runs (and is paid for), not after it
        data = call_data(**call._success_arguments(usage={}, latency_ms=0.0, quality=None))
        refuse_control_characters({"source": data["agent_id"], "data": data})
        json_values(data, "data")
        return call

    def __init__(
        self,
        healing: Healing,
        enqueue: Enqueue,
        call_data: CallData,
        agent_id: str,
        state: CallState,
        limits: Limits,
        options: CallOptions,
    ) -> None:
        self.healing = healing
        self.enqueue = enqueue
        self.call_data = call_data
        self.agent_id = agent_id
        self.state = state
        self.limits = limits
        self.options = options
        self.trim = options.get("trim")
        self.clock: Clock = options.get("clock") or WallClock()
        self.started = self.clock.now()
        #: the error the call would give up after if it ended now: its last attempt's,
        #: until it is queued as the give-up (tagged) or, untagged, when no experiment
        #: needs it again; None once the call answered (:meth:`ended`)
        self.last_error: LastError | None = None
        #: the advice step in flight (:meth:`after_failure`), which :meth:`ended` ends first
        #: when the blocking client's agent is interrupted while it runs on the client's loop
        self._advising: asyncio.Task[Any] | None = None
        #: set by the call's loop as soon as the agent's call returned: it did not give up,
        #: whatever ends it after that (its clock, Ctrl-C, a cancellation while it is reported)
        self.answered = False

    def _reported(self, event_id: str) -> None:
        on_reported = self.options.get("on_reported")
        if on_reported is not None:
            on_reported(event_id)

    def _reported_at_end(self, event_id: str) -> None:
        """:meth:`_reported` while the call ends on another exception, which stands: an
        ``on_reported`` that raises is logged."""
        try:
            self._reported(event_id)
        except Exception:
            log.exception("on_reported(%r) raised; the event was queued", event_id)

    async def after_failure(self, exc: BaseException) -> Step:
        """Report the failure, ask for advice, apply it; the exception gets a note saying
        why when the step gives up. When this raises (the agent's timeout cancelling the
        call while the healer is asked, its clock failing), the call ends: :meth:`ended`
        reports the error."""
        failure = read_failure(exc)
        data = error_data(self.state, failure, self.agent_id)
        last = self.last_error = LastError(str(uuid.uuid4()), _now(), data)
        self._advising = asyncio.current_task()
        try:
            step = self._within_limits(await self._step(failure, data))
            # The error is queued once the step is known (the advice request is the same
            # data, without the tag): the one after which the call gives up carries the
            # experiment assignment, so the experiment counts the call as a failure of its
            # variant.
            # The state is brought up to date before on_reported is told the id: a callback
            # that raises ends the call, and :meth:`ended` must not send the error again.
            if step.give_up:
                event_id = await self._queue_or_forget(self._given_up(data), last)
                self.last_error = None
                exc.add_note(
                    f"finops: gave up after {self.state.attempt} attempt(s): {step.reason}"
                )
            else:
                event_id = await self._queue_or_forget(data, last)
                if not self.options.get("experiment"):
                    self.last_error = None  # nothing to add to it if the call ends now
                self.state.attempt += 1
            self._reported(event_id)
            return step
        finally:
            self._advising = None

    async def _queue_or_forget(self, data: dict[str, Any], last: LastError) -> str:
        """Queue the attempt's error; when the client refuses it (``BufferFull`` under
        ``overflow="raise"``, ``ClientClosed``), the agent is told by that exception and
        :meth:`ended` does not try it again (which counted it dropped and logged it as a
        lost give-up, with no experiment too). A cancellation leaves it to :meth:`ended`."""
        try:
            return await self._enqueue_error(data, last)
        except Exception:
            self.last_error = None
            raise

    def _enqueue_error(
        self, data: dict[str, Any], last: LastError, *, wait: bool = True
    ) -> Awaitable[str]:
        return self.enqueue("agent.error", data, last.event_id, time=last.time, wait=wait)

    async def ended(self) -> None:
        """The call ends, whatever ended it: when that is not its own give-up nor its
        answer (the agent's timeout cancelling it while the healer is asked or while it
        waits before its next attempt, Ctrl-C, its trim hook or clock raising), the error of
        its last attempt is the one it gave up after. (A call still running when its event
        loop closes is not reported: the client's sender is cancelled with the loop, most
        often before this runs, and the give-up is lost with no log.) It is queued
        with the experiment's tag: if it went out untagged already (another attempt was to
        follow), the same event again (its id and time: the readers of ``agent.error.v1``
        count an id once, within what they remember; the experiments service reads the
        tagged copy alone). It never waits for room in the buffer (the agent's cancellation
        takes effect at once: :data:`~finops.client._queue.ENDED_CALLS_RESERVE`) and raises
        nothing but its own cancellation: what cannot be queued (the client is closing, the
        reserve is full) is logged."""
        advising = self._advising
        if advising is not None and advising is not asyncio.current_task():
            # the blocking client's agent was interrupted while the advice step ran on the
            # client's loop: end it first (it queues nothing once cancelled)
            advising.cancel()
            await asyncio.wait([advising])
        last, self.last_error = self.last_error, None
        if last is None or self.answered:
            return
        try:
            event_id = await self._enqueue_error(self._given_up(last.data), last, wait=False)
        except Exception as exc:
            log.error(
                "the call to %s/%s ended after an error; it could not be queued as the"
                " call's give-up: %s",
                self.state.provider,
                self.state.model,
                exc,
            )
            return
        self._reported_at_end(event_id)

    def _given_up(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` of the error the call gives up after: tagged with the call's experiment
        assignment, if any (intention-to-treat: the experiment counts a failure of the
        variant)."""
        experiment = self.options.get("experiment")
        return {**data, "experiment": experiment_tag(experiment)} if experiment else data

    async def _step(self, failure: Failure, data: dict[str, Any]) -> Step:
        if self.state.attempt >= self.limits.max_attempts:
            return Step(True, reason=f"{self.limits.max_attempts} attempts made")
        advice = await self.healing.advice(data)
        if advice is None:
            return self.healing.offline_step(failure, self.state)
        return self.healing.apply(advice, self.state, can_trim=self.trim is not None)

    def _within_limits(self, step: Step) -> Step:
        spent = self.clock.now() - self.started
        if not step.give_up and spent + step.delay_s > self.limits.budget_s:
            return Step(True, reason=f"waiting {step.delay_s:.1f}s would pass the time budget")
        return step

    def _success_arguments(
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
        report is queued without waiting, as a give-up's is (:meth:`ended`)."""
        self.answered = True
        arguments = self._success_arguments(self._usage(result), latency_ms, self._quality(result))
        event_id = self.options.get("event_id") or str(uuid.uuid4())
        at = _now()
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
                    self._reported_at_end(event_id)
                raise
        except (FinOpsError, ValueError) as exc:
            self.report_lost(exc)
            return
        self._reported(event_id)

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


def _now() -> str:
    return datetime.now(UTC).isoformat()


__all__ = [
    "REQUIRED_OPTIONS",
    "CallOptions",
    "Clock",
    "Failure",
    "Healing",
    "SelfHealingCall",
    "Trim",
    "WallClock",
    "maybe_await",
    "read_failure",
    "refuse_unknown_options",
]
