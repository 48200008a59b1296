"""Posting one batch to ingest and reading its answer: delivered, retry, rejected or refused."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx

from finops.client._answers import (
    RETRYABLE_STATUS,
    UNUSABLE_URL,
    Transient,
    body,
    describe,
    error_of,
    points_elsewhere,
    problems,
    retry_after,
    status_and_code,
    tls_refusal,
    transient_status,
    transport_reason,
    unusable_url,
    wrong_place,
)
from finops.client._tokens import Tokens
from finops.client.errors import EventsRejected, RequestRefused

log = logging.getLogger("finops.client")

Event = dict[str, Any]
#: 403 codes about some events of a batch (details list their indexes), not about the caller
PER_EVENT_REFUSALS = frozenset({"agent_mismatch", "team_mismatch", "source_mismatch"})
OnRejected = Callable[[list[Event], Any], None]


class IngestPoster:
    """Sends batches to ``POST /api/events``; keeps the rejected events until reported."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        ingest_url: str,
        tokens: Tokens,
        stats: Any,
        on_rejected: OnRejected | None,
    ) -> None:
        self.http = http
        self.ingest_url = ingest_url
        self.url = f"{ingest_url}/api/events"
        self.tokens = tokens
        self.stats = stats
        self.on_rejected = on_rejected
        self._unreported: list[tuple[list[Event], str, Any]] = []

    async def post(self, batch: list[Event]) -> list[Event]:
        """Send one batch; return what still has to be sent (empty when done).

        Raises :class:`Transient` for what is worth retrying and :class:`RequestRefused` for
        what is not; events refused as invalid are dropped from the batch and reported.
        """
        token = await self.tokens.bearer()
        try:
            resp = await self.http.post(
                self.url,
                content=json.dumps(batch, separators=(",", ":")).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except UNUSABLE_URL as exc:
            raise unusable_url("ingest", self.url, exc) from exc
        except httpx.TransportError as exc:
            raise tls_refusal("ingest", self.url, exc) or Transient(transport_reason(exc)) from exc
        status = resp.status_code
        if status == 202:
            self.tokens.accepted()
            self.stats.delivered += len(batch)
            self.stats.batches += 1
            return []
        if status in RETRYABLE_STATUS:
            raise Transient(transient_status(resp), retry_after(resp))
        if status == 401:
            self.tokens.refused("ingest", self.ingest_url, resp)
        if points_elsewhere(resp):
            raise wrong_place("ingest", self.url, resp)
        code = error_of(resp)[0]
        if status == 413 and len(batch) > 1:
            half = len(batch) // 2
            return (await self.post(batch[:half])) + (await self.post(batch[half:]))
        if status == 422 or code in PER_EVENT_REFUSALS:
            return self._drop_invalid(batch, resp)
        if status == 403:
            raise RequestRefused(
                f"ingest at {self.ingest_url} refused the events ({describe(resp)}); the "
                "account of the API key or token needs the scope events:write",
                status=status,
                code=code,
                url=self.url,
            )
        self._reject(batch, resp)
        return []

    def raise_rejected(self) -> None:
        """Raise :class:`EventsRejected` for the rejects not reported yet (then forget them)."""
        if not self._unreported:
            return
        unreported, self._unreported = self._unreported, []
        raise EventsRejected(
            "; ".join(text for _, text, _ in unreported),
            [e for events, _, _ in unreported for e in events],
            [reason for _, _, reason in unreported],
        )

    def _drop_invalid(self, batch: list[Event], resp: httpx.Response) -> list[Event]:
        details = error_of(resp)[2]
        bad = {d.get("index") for d in details or [] if isinstance(d, dict)}
        if not bad or None in bad:
            self._reject(batch, resp)
            return []
        batch = list(batch)
        for i in _untagged_by_an_older_ingest(batch, details):
            batch[i] = {**batch[i], "data": {**batch[i]["data"]}}
            del batch[i]["data"]["experiment"]
            bad.discard(i)
        if bad:
            self._reject([e for i, e in enumerate(batch) if i in bad], resp)
        return [e for i, e in enumerate(batch) if i not in bad]

    def _reject(self, events: list[Event], resp: httpx.Response) -> None:
        _, message, details = error_of(resp)
        found = problems(details, message)
        listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        plural = "event" if len(events) == 1 else "events"
        text = f"ingest rejected {len(events)} {plural} ({status_and_code(resp)})"
        text += f": {listed}" if listed else ""
        self.stats.rejected += len(events)
        log.error("%s", text)
        if self.on_rejected:
            try:
                self.on_rejected(events, body(resp))
                return
            except Exception:  # the agent's callback: its failure must not stall delivery
                log.exception(
                    "on_rejected raised; flush() and close() raise the %d rejected %s instead",
                    len(events),
                    plural,
                )
        self._unreported.append((events, text, body(resp)))


def _untagged_by_an_older_ingest(batch: list[Event], details: Any) -> list[int]:
    """The indexes of the errors whose only fault is their experiment tag (the error a call
    assigned to an experiment gave up after), refused as an unknown field by an ingest older
    than it: sent again without the tag, they reach the healer and the optimizer as before
    (the experiment does not count the give-up, as before the tag)."""
    faults: dict[int, set[tuple[Any, Any]]] = {}
    for d in details if isinstance(details, list) else []:
        if isinstance(d, dict) and isinstance(d.get("index"), int):
            faults.setdefault(d["index"], set()).add((d.get("field"), d.get("type")))
    tag_only = {("data.experiment", "extra_forbidden")}
    untagged = [
        i
        for i, found in faults.items()
        if found == tag_only
        and 0 <= i < len(batch)
        and batch[i].get("type") == "agent.error"
        and "experiment" in batch[i].get("data", {})
    ]
    if untagged:
        log.warning(
            "ingest does not take the experiment tag of an agent.error (a version before it):"
            " %d error(s) of calls that gave up sent again without it; their experiments do not"
            " count them",
            len(untagged),
        )
    return untagged
