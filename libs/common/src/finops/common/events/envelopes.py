"""The CloudEvents-style envelope around an event's data, as JSON-ready dicts.

Tests, benchmarks and tools that produce events build them here, so the envelope's fields
(``id``, ``type``, ``source``, ``specversion``, ``time``) are spelled once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from finops.common.events.schemas import ERROR, LLM_CALL, SPEC_VERSION


def envelope(
    event_type: str,
    data: Mapping[str, Any],
    *,
    time: datetime | str | None = None,
    event_id: uuid.UUID | str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """An event of ``event_type`` around ``data``, ready for ``json.dumps``.

    Parameters
    ----------
    event_type
        ``agent.llm_call`` or ``agent.error``.
    data
        The event's data; its ``agent_id`` is the default ``source``.
    time
        When the call finished; now (UTC) when omitted.
    event_id
        The dedupe key; a fresh UUID when omitted.
    source
        The emitting agent, when it is not the data's ``agent_id``.

    Examples
    --------
    >>> event = envelope("agent.error", {"agent_id": "bot"}, time="2026-11-02T12:00:00Z")
    >>> [event[key] for key in ("type", "source", "specversion", "time", "data")]
    ['agent.error', 'bot', '1.0', '2026-11-02T12:00:00Z', {'agent_id': 'bot'}]
    >>> len(event["id"])
    36
    """
    when = datetime.now(UTC) if time is None else time
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": event_type,
        "source": source or data["agent_id"],
        "specversion": SPEC_VERSION,
        "time": when if isinstance(when, str) else when.isoformat(),
        "data": dict(data),
    }


def llm_call_event(data: Mapping[str, Any], **envelope_fields: Any) -> dict[str, Any]:
    """An ``agent.llm_call`` event around ``data`` (see :func:`envelope`).

    >>> llm_call_event({"agent_id": "bot"})["type"]
    'agent.llm_call'
    """
    return envelope(LLM_CALL, data, **envelope_fields)


def error_event(data: Mapping[str, Any], **envelope_fields: Any) -> dict[str, Any]:
    """An ``agent.error`` event around ``data`` (see :func:`envelope`).

    >>> error_event({"agent_id": "bot"})["type"]
    'agent.error'
    """
    return envelope(ERROR, data, **envelope_fields)
