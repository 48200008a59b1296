"""Validation of a batch of events, reporting every bad index and field: :func:`validate_batch`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from finops.common.events.schemas.event import _BATCH_ADAPTER, EVENT_TYPES, Event
from finops.common.events.schemas.name_text import CONTROL_TYPE, control_fields, may_hold_control
from finops.common.events.schemas.nul_text import NUL_MESSAGE, _may_hold_nul, _nul_fields
from finops.common.events.schemas.time_bounds import _TIME_BOUNDS, TimeBounds
from finops.common.name_characters import name_refusal

BatchError = dict[str, Any]  # {"index": int | None, "field": str, "message": str, "type": str}


def _text_errors(batch: list[Any], nul: bool, control: bool) -> list[BatchError]:
    """Any string or key holding a NUL (``invalid_text``), and a name holding another
    control character, a line separator or a format character (``control_character``, the
    character's code point in the message); one error a field."""
    errors: list[BatchError] = []
    for index, event in enumerate(batch):
        nuls = _nul_fields(event, "") if nul else []
        errors += [
            {"index": index, "field": field, "message": NUL_MESSAGE, "type": "invalid_text"}
            for field in nuls
        ]
        if control:
            errors += [
                {
                    "index": index,
                    "field": field,
                    "message": name_refusal(char),
                    "type": CONTROL_TYPE,
                }
                for field, char in control_fields(event)
                if field not in nuls
            ]
    return errors


_WHOLE_EVENT_TYPES = frozenset({"union_tag_invalid", "union_tag_not_found"})


def _error_entry(err: Mapping[str, Any], *, batch: bool) -> BatchError:
    loc = list(err["loc"])
    index: int | None = None
    if batch:
        if loc and isinstance(loc[0], int):
            index = loc.pop(0)
    if loc and loc[0] in EVENT_TYPES:  # the discriminator tag pydantic inserts
        loc.pop(0)
    if err["type"] in _WHOLE_EVENT_TYPES and not loc:
        loc = ["type"]
    return {
        "index": index,
        "field": ".".join(str(p) for p in loc),
        "message": err["msg"],
        "type": err["type"],
    }


def validation_errors(exc: ValidationError, *, batch: bool = False) -> list[BatchError]:
    """A pydantic error as ``[{index, field, message, type}]`` with dotted field paths."""
    return [
        _error_entry(e, batch=batch)
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class BatchResult:
    """Outcome of :func:`validate_batch`: either ``events`` or ``errors`` (never both)."""

    __slots__ = ("errors", "events")

    def __init__(self, events: list[Event] | None, errors: list[BatchError]) -> None:
        self.events = events
        self.errors = errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def __repr__(self) -> str:
        n = len(self.events) if self.events is not None else None
        return f"BatchResult(events={n}, errors={self.errors!r})"


def validate_batch(
    batch: list[Any] | bytes | str,
    *,
    time_bounds: TimeBounds | None = None,
    parsed_from: bytes | None = None,
) -> BatchResult:
    """Validate a whole batch, reporting EVERY bad index and field.

    ``batch`` is a list of event dicts or the raw JSON array (bytes / str; fastest).
    ``time_bounds`` refuses event times outside them (see :class:`TimeBounds`). A string
    holding a NUL character is refused (type ``invalid_text``), and so is a name holding any
    control character, line separator or format character (type ``control_character``:
    :mod:`.name_text`); ``parsed_from``, the
    JSON a list was parsed from, lets a batch without the escapes skip those scans.
    Returns ``BatchResult(events, [])`` or ``BatchResult(None, errors)``; the caller applies
    all-or-nothing semantics. Errors are sorted by index; a non-list batch gives one error
    with ``index=None``.
    """
    context = {_TIME_BOUNDS: time_bounds} if time_bounds is not None else None
    text = batch if isinstance(batch, (bytes, bytearray, str)) else parsed_from
    errors: list[BatchError] = []
    try:
        if isinstance(batch, (bytes, bytearray, str)):
            events = _BATCH_ADAPTER.validate_json(batch, context=context)
        else:
            events = _BATCH_ADAPTER.validate_python(batch, context=context)
    except ValidationError as exc:
        errors = validation_errors(exc, batch=True)
    nul = text is None or _may_hold_nul(text)
    control = text is None or may_hold_control(text)
    if nul or control:
        decoded: Any = batch
        if isinstance(batch, (bytes, bytearray, str)):
            try:
                decoded = from_json(batch)
            except ValueError:  # reported above as json_invalid
                decoded = None
        if isinstance(decoded, list):
            errors += _text_errors(decoded, nul, control)
    if errors:
        errors.sort(key=lambda e: -1 if e["index"] is None else e["index"])
        return BatchResult(None, errors)
    return BatchResult(events, [])
