"""The options of a self-healing call (:class:`CallOptions`) and the clock it reads."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, Required, TypedDict


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


Trim = Callable[[int], Awaitable[None] | None]


class Clock(Protocol):
    """The time a self-healing call reads and waits in: :class:`WallClock` unless the agent
    gives another (a simulation passes its simulated clock, so waits cost no wall time).

    ``now()`` is monotonic seconds (the time budget and the reported ``latency_ms``);
    ``sleep(seconds)`` waits, blocking or awaitable.
    """

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> Awaitable[None] | None: ...


class WallClock:
    """Real time: ``time.monotonic`` and ``asyncio.sleep``.

    Examples
    --------
    >>> clock = WallClock()
    >>> clock.now() <= clock.now()
    True
    """

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)


class CallOptions(TypedDict, total=False):
    """The options of :meth:`~finops.client.AsyncFinOpsClient.call` (and its blocking twin)."""

    task_type: Required[str]
    provider: Required[str]
    model: Required[str]
    params: Mapping[str, Any]
    trim: Trim
    input_tokens: int
    max_tokens: int
    usage: Callable[[Any], Mapping[str, Any]]
    max_attempts: int
    budget_s: float
    #: the answer's quality: a number, or a function of the result
    quality: float | Callable[[Any], float]
    team: str
    project: str
    event_id: str
    #: the recommendation the first model came from; reported only when the call succeeds
    #: on that model, not after a fallback
    decision: Mapping[str, Any]
    #: the experiment assignment the first model came from; reported with the call however
    #: it ends (after a fallback too, and on the error after which it gives up)
    experiment: Mapping[str, Any]
    features: Mapping[str, float]
    #: the configuration the call is made with (a recommendation's ``config``): reported with
    #: the successful call when it ran on the model first asked for, as ``decision``
    config: Mapping[str, Any]
    clock: Clock
    #: told the id of every event the call queues (its errors and its successful call)
    on_reported: Callable[[str], None]


#: the options :class:`CallOptions` marks ``Required`` (its ``__required_keys__`` is empty
#: on Python 3.11, its annotations being strings here)
REQUIRED_OPTIONS = ("task_type", "provider", "model")


#: record_call's arguments that call() measures itself or cannot know, and why
RECORD_CALL_ONLY = {
    name: f" ({name} is record_call's: {why}; report such a call with record_call)"
    for name, why in {
        "cost_usd": "call() leaves the cost to the platform, priced from the usage",
        "ttft_ms": "call() does not see the first token of a stream",
        "latency_ms": "call() measures it",
        "success": "call() reports the successful call",
    }.items()
}


def refuse_unknown_options(options: Mapping[str, Any]) -> None:
    """The ``TypeError`` Python gives a function for an option :class:`CallOptions` does not
    have (a misspelt one was ignored: the call ran on the defaults), or a required one
    missing (it was a ``KeyError``).

    >>> refuse_unknown_options({"task_type": "qa", "provider": "p", "model": "m", "budget": 9})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: call() got an unexpected keyword argument 'budget'; its options are task_type, ...
    """
    for name in options:
        if name not in CallOptions.__annotations__:
            raise TypeError(
                f"call() got an unexpected keyword argument {name!r}"
                + RECORD_CALL_ONLY.get(name, "")
                + f"; its options are {', '.join(CallOptions.__annotations__)}"
            )
    for name in REQUIRED_OPTIONS:
        if name not in options:
            raise TypeError(f"call() missing a required keyword argument: {name!r}")
