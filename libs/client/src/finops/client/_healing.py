"""Self-healing calls: read a failed LLM call, ask the healer, apply its remedy.

:class:`SelfHealingCall` is one call's course (what it does after a failure, when it
answers, when it ends); :func:`heal` is the loop of :meth:`AsyncFinOpsClient.call` (its
blocking twin runs its own): call, and on an exception: report, ask, apply, sleep, call
again. The parts, each in its module: the call's state and next step
(:mod:`~finops.client._call_state`), the healer's advice (:mod:`~finops.client._advice`),
the events the call queues (:mod:`~finops.client._call_reports`).

A provider exception is read duck-typed (:func:`read_failure`): ``.status_code``, ``.body``
and ``.response.headers`` (the openai and anthropic SDKs), ``.response`` of
``httpx.HTTPStatusError``, or a plain dict with ``status``/``body``/``headers``/``message``.
When the healer cannot be reached, or its answer is not advice the SDK can follow
(:func:`~finops.client._advice.advice_fault`), the remedy is plain backoff (full jitter,
honouring ``Retry-After``) on 408/429/5xx, timeouts and connection errors, and the exception
on anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from finops.client._advice import Healing
from finops.client._call_options import (
    REQUIRED_OPTIONS,
    CallOptions,
    Clock,
    Trim,
    WallClock,
    maybe_await,
    refuse_unknown_options,
)
from finops.client._call_reports import CallData, CallReports, Enqueue, error_data
from finops.client._call_state import CallState, LastError, Limits, Step
from finops.client._failures import Failure, read_failure
from finops.client._json_values import json_values
from finops.client._names import refuse_control_characters

log = logging.getLogger("finops.client")


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
        data = call_data(**call.reports.success_arguments(usage={}, latency_ms=0.0, quality=None))
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
        self.agent_id = agent_id
        self.state = state
        self.limits = limits
        self.options = options
        self.reports = CallReports(enqueue, call_data, state, options)
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

    async def after_failure(self, exc: BaseException) -> Step:
        """Report the failure, ask for advice, apply it; the exception gets a note saying
        why when the step gives up. When this raises (the agent's timeout cancelling the
        call while the healer is asked, its clock failing), the call ends: :meth:`ended`
        reports the error."""
        failure = read_failure(exc)
        data = error_data(self.state, failure, self.agent_id)
        last = self.last_error = LastError.now(data)
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
                event_id = await self._queue_or_forget(self.reports.given_up(data), last)
                self.last_error = None
                exc.add_note(
                    f"finops: gave up after {self.state.attempt} attempt(s): {step.reason}"
                )
            else:
                event_id = await self._queue_or_forget(data, last)
                if not self.options.get("experiment"):
                    self.last_error = None  # nothing to add to it if the call ends now
                self.state.attempt += 1
            self.reports.reported(event_id)
            return step
        finally:
            self._advising = None

    def interrupted(self, exc: BaseException) -> None:
        """The agent's call ``fn`` was cancelled or interrupted while it ran (the agent's
        timeout, Ctrl-C). In an experiment, an attempt cut short with no earlier error is the
        error the call gives up after (:meth:`ended` queues it, tagged): the variant keeps
        every call assigned to it, and one whose slow calls the agents abandon is not seen
        only through its fast ones. After a failed attempt, that attempt's error stays the
        give-up, as before. Without an experiment nothing is reported: an agent may cancel
        calls on purpose (the slower of two raced calls)."""
        if not isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
            return  # SystemExit, GeneratorExit: the process or the caller ends, not the call
        if self.options.get("experiment") and self.last_error is None and not self.answered:
            failure = read_failure(exc)
            self.last_error = LastError.now(error_data(self.state, failure, self.agent_id))

    async def _queue_or_forget(self, data: dict[str, Any], last: LastError) -> str:
        """Queue the attempt's error; when the client refuses it (``BufferFull`` under
        ``overflow="raise"``, ``ClientClosed``), the agent is told by that exception and
        :meth:`ended` does not try it again (which counted it dropped and logged it as a
        lost give-up, with no experiment too). A cancellation leaves it to :meth:`ended`."""
        try:
            return await self.reports.queue_error(data, last)
        except Exception:
            self.last_error = None
            raise

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
        await self.reports.give_up_at_end(last)

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

    async def succeeded(self, result: Any, latency_ms: float) -> None:
        """The call answered (it did not give up, whatever ends it now): report it
        (:meth:`CallReports.succeeded <finops.client._call_reports.CallReports.succeeded>`,
        which raises nothing but a cancellation)."""
        self.answered = True
        await self.reports.succeeded(result, latency_ms)


async def heal(fn: Callable[..., Any], healing: SelfHealingCall) -> Any:
    """The loop of :meth:`AsyncFinOpsClient.call`: run ``fn`` and heal its failures as
    ``healing`` says; what ``fn`` returns, or the exception the call gave up or ended on."""
    try:
        while True:
            began = healing.clock.now()
            try:
                result = await maybe_await(fn(**healing.state.arguments()))
                healing.answered = True  # (paid for) whatever ends the call now
            except GeneratorExit:
                raise
            except Exception as exc:
                step = await healing.after_failure(exc)
                if step.give_up:
                    raise
                if healing.trim is not None and step.trim_to is not None:
                    await maybe_await(healing.trim(step.trim_to))
                await maybe_await(healing.clock.sleep(step.delay_s))
                continue
            except BaseException as exc:  # cancelled or interrupted while fn ran
                healing.interrupted(exc)
                raise
            await healing.succeeded(result, (healing.clock.now() - began) * 1000.0)
            return result
    except GeneratorExit:  # destroyed, never to run again: no loop left to report on
        raise
    except BaseException:
        # whatever ends the call (its give-up, the agent's timeout cancelling it in the
        # healer's advice or the wait before the next attempt, its trim hook or clock
        # raising): the error it ended after is queued as its give-up (not when its event
        # loop closes under it: the sender is cancelled with the loop, the report lost)
        await healing.ended()
        raise


__all__ = [
    "REQUIRED_OPTIONS",
    "CallOptions",
    "Clock",
    "Failure",
    "Healing",
    "SelfHealingCall",
    "Trim",
    "WallClock",
    "heal",
    "maybe_await",
    "read_failure",
    "refuse_unknown_options",
]
