"""What can be done about one classified error: the safe remedies for its kind.

Pure: no I/O. For each kind, :func:`candidate_remedies` lists the remedies that can succeed,
the default first; the learned effectiveness (:mod:`finops.healer.domain.effectiveness`) picks
one of them, so learning can only ever choose between safe remedies.

* ``rate_limit``, ``overloaded``, ``server_error``, ``timeout``, ``network``: retry after an
  exponential backoff with full jitter, never sooner than the provider's stated wait (then the
  action is ``wait``), or fall back to an equivalent model at another provider (the default
  from the call's :data:`FALLBACK_FROM_ATTEMPT`-th attempt on, when there is one; the only
  remedy when the failing model's circuit breaker is open and there is one).
* ``context_length_exceeded``: never the same call again. Trim to the model's window (minus the
  room the answer needs) when the window is known, or fall back to a model whose window fits.
* ``invalid_output``: repair (JSON mode, a lower temperature), or fall back.
* ``quota_exhausted``: another provider's quota may hold: fall back, else abort.
* ``model_not_found``: an equivalent model may exist: fall back, else abort.
* ``auth``, ``content_policy``, ``bad_request``: abort (the same request fails anywhere).
* ``unknown``: one retry after a backoff, then abort.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import SimpleNamespace
from typing import Any, cast

from tenacity import RetryCallState, wait_exponential

from finops.common.provider_errors.taxonomy import ErrorKind
from finops.common.provider_errors.waits import MAX_STATED_WAIT_MS
from finops.healer.domain.catalog import Excluded, ModelCatalog

K = ErrorKind


class Action(StrEnum):
    RETRY = "retry"
    WAIT = "wait"
    FALLBACK = "fallback"
    TRIM = "trim"
    REPAIR = "repair"
    ABORT = "abort"


#: Actions that run the same request against the same model again (after a delay).
SAME_CALL_AGAIN = frozenset({Action.RETRY, Action.WAIT})
#: Kinds the same call can never get past: no retry or wait, whatever is learned.
NEVER_AGAIN = frozenset(
    {
        K.QUOTA_EXHAUSTED,
        K.AUTH,
        K.CONTENT_POLICY,
        K.BAD_REQUEST,
        K.MODEL_NOT_FOUND,
        K.CONTEXT_LENGTH_EXCEEDED,
        K.INVALID_OUTPUT,
    }
)
BACKOFF_KINDS = frozenset({K.RATE_LIMIT, K.OVERLOADED, K.SERVER_ERROR, K.TIMEOUT, K.NETWORK})
#: Temperature asked for by a repair (JSON output is steadier cold).
REPAIR_TEMPERATURE = 0.0


@dataclass(frozen=True)
class FailedCall:
    """The call that failed, as far as a remedy needs it.

    ``input_tokens`` and ``max_tokens`` are the request's, when the agent reported them.
    """

    provider: str
    model: str
    attempt: int = 1
    input_tokens: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Remedy:
    """One remedy: what to do, how long to wait first, and what to change.

    Examples
    --------
    >>> Remedy(Action.FALLBACK, provider="azure", model="gpt-4o").changes_model
    True
    >>> Remedy(Action.WAIT, delay_ms=6000).changes_model
    False
    """

    action: Action
    delay_ms: int = 0
    provider: str | None = None
    model: str | None = None
    max_input_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""

    @property
    def changes_model(self) -> bool:
        return self.model is not None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter that honours the provider's stated wait.

    The cap doubles per attempt from ``base_ms`` up to ``max_ms`` (tenacity's
    ``wait_exponential``); the delay is uniform in ``[0, cap]``. A stated wait is a floor:
    the delay is then the stated wait plus up to ``spread`` of it (at most ``max_spread_ms``),
    so agents told the same wait do not all come back at the same instant.

    Examples
    --------
    >>> rng = random.Random(0)
    >>> Backoff().delay(1, None, rng)[0] <= 500
    True
    >>> delay, stated = Backoff().delay(1, 6000, rng)
    >>> stated, 6000 <= delay <= 6600
    (True, True)
    """

    base_ms: float = 500.0
    max_ms: float = 30_000.0
    spread: float = 0.1
    max_spread_ms: float = 1_000.0

    def cap_ms(self, attempt: int) -> float:
        grow = wait_exponential(multiplier=self.base_ms / 1000.0, max=self.max_ms / 1000.0)
        # wait_exponential reads nothing of the retry state but the attempt number.
        state = cast(RetryCallState, SimpleNamespace(attempt_number=max(1, attempt)))
        return float(grow(state)) * 1000.0

    def delay(
        self, attempt: int, stated_wait_ms: int | None, rng: random.Random
    ) -> tuple[int, bool]:
        """``(delay_ms, decided_by_the_stated_wait)``."""
        jittered = rng.uniform(0.0, self.cap_ms(attempt))
        if stated_wait_ms is None or stated_wait_ms < jittered:
            return int(jittered), False
        spread = rng.uniform(0.0, min(stated_wait_ms * self.spread, self.max_spread_ms))
        return stated_wait_ms + int(spread), True


@dataclass(frozen=True)
class RemedyContext:
    """Everything :func:`candidate_remedies` reads besides the kind."""

    call: FailedCall
    stated_wait_ms: int | None
    catalog: ModelCatalog
    excluded: Excluded
    rng: random.Random
    backoff: Backoff = field(default_factory=Backoff)


#: The remedies one kind allows in ``ctx``, the default first (None: not available here).
Candidates = Callable[[RemedyContext], list[Remedy | None]]


def candidate_remedies(kind: ErrorKind, ctx: RemedyContext) -> list[Remedy]:
    """The remedies that can succeed for ``kind``, the default first; never empty (an
    ``abort`` when nothing can)."""
    found = [r for r in _CANDIDATES.get(kind, _abort_only)(ctx) if r is not None]
    if kind in NEVER_AGAIN:  # a guard on the table below, not a second decision
        found = [r for r in found if r.action not in SAME_CALL_AGAIN]
    return found or [_abort(kind)]


def _retry(ctx: RemedyContext, why: str) -> Remedy:
    delay, stated = ctx.backoff.delay(ctx.call.attempt, ctx.stated_wait_ms, ctx.rng)
    if stated:
        asked = f"{why}: wait the {ctx.stated_wait_ms} ms the provider asked for"
        if ctx.stated_wait_ms == MAX_STATED_WAIT_MS:
            asked = (
                f"{why}: the provider asked to wait a day or longer; "
                f"wait {MAX_STATED_WAIT_MS} ms, the longest wait advised"
            )
        return Remedy(Action.WAIT, delay, reason=asked)
    return Remedy(Action.RETRY, delay, reason=f"{why}: retry after a jittered backoff")


def _fallback_equivalent(ctx: RemedyContext, why: str) -> Remedy | None:
    call = ctx.call
    for model in ctx.catalog.equivalents(call.provider, call.model, ctx.excluded):
        if call.input_tokens is None or model.fits(call.input_tokens):
            return Remedy(
                Action.FALLBACK,
                provider=model.provider,
                model=model.model,
                reason=f"{why}: an equivalent model at {model.provider}",
            )
    return None


#: Tokens kept for the answer when a trimmed request does not say its ``max_tokens`` (at most
#: a quarter of the window).
DEFAULT_ANSWER_ROOM = 4_096

#: Attempts of one call after which a transient error moves it elsewhere by default: the
#: retries already made did not help, so the provider is likely down for longer than a
#: backoff (an outage), and an equivalent model elsewhere answers now.
FALLBACK_FROM_ATTEMPT = 3


def _backoff_kind(why: str) -> Candidates:
    def remedies(ctx: RemedyContext) -> list[Remedy | None]:
        if ctx.excluded(ctx.call.provider, ctx.call.model):
            # Its breaker is open: the fleet has stopped calling it, so the same call again
            # would wait on a provider that keeps failing. Elsewhere only, when there is one.
            moved = _fallback_equivalent(ctx, f"{why}, and its circuit breaker is open")
            if moved is not None:
                return [moved]
        retry, elsewhere = _retry(ctx, why), _fallback_equivalent(ctx, why)
        if ctx.call.attempt >= FALLBACK_FROM_ATTEMPT and elsewhere is not None:
            return [elsewhere, retry]
        return [retry, elsewhere]

    return remedies


def _context_length(ctx: RemedyContext) -> list[Remedy | None]:
    call = ctx.call
    why = "the request does not fit the model's context window"
    remedies: list[Remedy | None] = []
    window = ctx.catalog.context_window(call.provider, call.model)
    if window is not None:
        # the answer needs room too; when the request did not say how much, a typical
        # answer's (the whole window left the trimmed retry no room to answer in)
        room = (
            call.max_tokens
            if call.max_tokens is not None
            else min(DEFAULT_ANSWER_ROOM, window // 4)
        )
        budget = window - room
        if budget > 0 and (call.input_tokens is None or budget < call.input_tokens):
            remedies.append(
                Remedy(
                    Action.TRIM,
                    max_input_tokens=budget,
                    reason=f"{why}: trim the input to {budget} tokens",
                )
            )
    needed = None if call.input_tokens is None else call.input_tokens + (call.max_tokens or 0)
    larger = ctx.catalog.larger_window(call.provider, call.model, needed, ctx.excluded)
    if larger is not None:
        remedies.append(
            Remedy(
                Action.FALLBACK,
                provider=larger.provider,
                model=larger.model,
                reason=f"{why}: {larger.model} has a window of {larger.context_window} tokens",
            )
        )
    if not remedies:
        # say which of the two it is: "the window is unknown" read wrong for gpt-4o asked for
        # more tokens than any model holds
        if window is None:
            cannot = f"{call.model}'s window is unknown, so the input cannot be trimmed to it"
        else:
            cannot = (
                f"trimming the input cannot make room in {call.model}'s {window} tokens"
                " with the answer's"
            )
        remedies.append(
            Remedy(
                Action.ABORT,
                reason=f"{why}: no known model's window holds the request and its answer, and"
                f" {cannot}: shorten the input or lower max_tokens",
            )
        )
    return remedies


def _invalid_output(ctx: RemedyContext) -> list[Remedy | None]:
    why = "the model's output was malformed"
    repair = Remedy(
        Action.REPAIR,
        params={"response_format": {"type": "json_object"}, "temperature": REPAIR_TEMPERATURE},
        reason=f"{why}: ask again in JSON mode at temperature {REPAIR_TEMPERATURE}",
    )
    return [repair, _fallback_equivalent(ctx, why)]


def _elsewhere_or_abort(why: str) -> Candidates:
    def remedies(ctx: RemedyContext) -> list[Remedy | None]:
        return [_fallback_equivalent(ctx, why)]

    return remedies


def _unknown(ctx: RemedyContext) -> list[Remedy | None]:
    if ctx.call.attempt <= 1:
        return [_retry(ctx, "nothing is known about this error; one more try")]
    return []


def _abort_only(ctx: RemedyContext) -> list[Remedy | None]:
    return []


_ABORT_REASONS = {
    K.QUOTA_EXHAUSTED: "the quota or credit is used up and no other provider can take the call",
    K.AUTH: "the credentials or permissions are wrong: fix the key or the role",
    K.CONTENT_POLICY: "a safety filter refused the request: change the prompt",
    K.BAD_REQUEST: "the request itself is invalid: fix it",
    K.MODEL_NOT_FOUND: "the model does not exist for this caller and has no equivalent",
    K.CONTEXT_LENGTH_EXCEEDED: "the request fits no known model's context window: shorten it",
    K.INVALID_OUTPUT: "the output stayed malformed",
    K.UNKNOWN: "nothing is known about this error and a retry did not help",
}


def _abort(kind: ErrorKind) -> Remedy:
    return Remedy(Action.ABORT, reason=_ABORT_REASONS.get(kind, "no remedy can succeed"))


_CANDIDATES: dict[ErrorKind, Candidates] = {
    K.RATE_LIMIT: _backoff_kind("rate limited"),
    K.OVERLOADED: _backoff_kind("the provider is overloaded"),
    K.SERVER_ERROR: _backoff_kind("the provider failed"),
    K.TIMEOUT: _backoff_kind("no answer in time"),
    K.NETWORK: _backoff_kind("no response"),
    K.CONTEXT_LENGTH_EXCEEDED: _context_length,
    K.INVALID_OUTPUT: _invalid_output,
    K.QUOTA_EXHAUSTED: _elsewhere_or_abort("the quota is used up here"),
    K.MODEL_NOT_FOUND: _elsewhere_or_abort("the model does not exist here"),
    K.UNKNOWN: _unknown,
}
