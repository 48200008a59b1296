"""The healer's advice on a failed call: ask for it (:meth:`Healing.advice`), check that it
is advice the SDK can follow (:func:`advice_fault`), and turn it into the call's next
:class:`~finops.client._call_state.Step` (:meth:`Healing.apply`), or, without advice, plain
backoff (:meth:`Healing.offline_step`)."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from typing import Any

import httpx

from finops.client._call_state import CallState, Step
from finops.client._failures import Failure
from finops.client._json_values import is_number
from finops.client._tokens import Tokens

log = logging.getLogger("finops.client")

ADVICE_TIMEOUT_S = 2.0


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
