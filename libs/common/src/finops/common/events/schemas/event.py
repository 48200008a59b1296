"""The CloudEvents-style envelope (:class:`Event`), its two event types and their parsing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, Union
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, TypeAdapter

from finops.common.events.schemas.call_data import LlmCallDataV1
from finops.common.events.schemas.error_data import ErrorDataV1
from finops.common.events.schemas.fields import (
    ERROR,
    LLM_CALL,
    SCHEMA_VERSION,
    SPEC_VERSION,
    Id128,
    _Strict,
)
from finops.common.events.schemas.nul_text import NUL_MESSAGE, _may_hold_nul, _nul_fields
from finops.common.events.schemas.time_bounds import _within_time_bounds


class Event(_Strict):
    """CloudEvents-style envelope; the base of every event type.

    Use :func:`parse_event` / :meth:`Event.from_kafka` to parse an event of any type.
    """

    schema_version: ClassVar[str] = SCHEMA_VERSION

    id: UUID = Field(description="Client-generated UUID; the dedupe key.")
    type: str
    source: Id128 = Field(description="The emitting agent (or SDK instance).")
    time: Annotated[AwareDatetime, AfterValidator(_within_time_bounds)] = Field(
        description="When the call finished (RFC 3339 with offset)."
    )
    specversion: Literal["1.0"] = SPEC_VERSION
    datacontenttype: Literal["application/json"] | None = None
    dataschema: Annotated[str, StringConstraints(max_length=256)] | None = None
    data: Any

    @property
    def agent_id(self) -> str:
        return self.data.agent_id  # type: ignore[no-any-return]

    def to_kafka(self) -> tuple[bytes, bytes]:
        """``(key, value)``: key = agent_id (UTF-8), value = compact JSON (every field,
        nulls included, so consumers in any language see the full shape)."""
        return self.data.agent_id.encode(), self.model_dump_json().encode()

    @classmethod
    def from_kafka(cls, value: bytes | str) -> Event:
        """Parse a Kafka record value (any event type); raises ``ValidationError``, or
        ``ValueError`` for a string holding a NUL (one written before ingest refused them)."""
        event = _EVENT_ADAPTER.validate_json(value)
        if _may_hold_nul(value):
            fields = _nul_fields(event.model_dump(), "")
            if fields:
                raise ValueError(f"{fields[0]}: {NUL_MESSAGE}")
        if not isinstance(event, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(event).__name__}")
        return event


class LlmCallEventV1(Event):
    type: Literal["agent.llm_call"]
    data: LlmCallDataV1


class ErrorEventV1(Event):
    type: Literal["agent.error"]
    data: ErrorDataV1


# current versions
LlmCallData = LlmCallDataV1
ErrorData = ErrorDataV1
LlmCallEvent = LlmCallEventV1
ErrorEvent = ErrorEventV1

AnyEvent: TypeAlias = Annotated[Union[LlmCallEventV1, ErrorEventV1], Field(discriminator="type")]  # noqa: UP007

EVENT_TYPES: dict[str, type[Event]] = {LLM_CALL: LlmCallEventV1, ERROR: ErrorEventV1}

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)
_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[AnyEvent])  # type: ignore[arg-type]


def parse_event(obj: Mapping[str, Any] | bytes | str) -> Event:
    """Validate one event (dict, or JSON bytes / str); raises ``pydantic.ValidationError``."""
    if isinstance(obj, (bytes, bytearray, str)):
        return _EVENT_ADAPTER.validate_json(obj)
    return _EVENT_ADAPTER.validate_python(obj)


def stamp_principal(event: Event, principal: str | None) -> Event:
    """A copy of ``event`` with ``data.principal`` set to the authenticated subject."""
    return event.model_copy(update={"data": event.data.model_copy(update={"principal": principal})})


def new_event_time() -> datetime:
    """Current time, tz-aware (UTC), for building events."""
    return datetime.now(UTC)
