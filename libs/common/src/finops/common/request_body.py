"""The base of every JSON request body the services accept.

One rule set for all of them, so a value a service cannot store never reaches its code:

* strict numbers where a body declares them with :data:`Number`, :data:`Count` and :data:`Flag`:
  ``false`` is not the number 0, ``"3"`` is not the integer 3 (a JSON integer is still a valid
  float). The model itself stays lax, because FastAPI validates the parsed body in Python mode,
  where a strict model would refuse a JSON array for a tuple or a string for a datetime;
* no NaN or Infinity (Python's JSON parser reads them; JSON has neither);
* no unknown fields: a typo is an error, not a silently ignored setting;
* no NUL character and no unpaired surrogate in any string, at any depth: PostgreSQL's text and
  jsonb types cannot hold them, so accepting one would end in a 500 (or a checkpoint that no
  longer saves) instead of a 422.

Examples
--------
>>> from pydantic import ValidationError
>>> class Limit(RequestBody):
...     name: str
...     usd: Number
>>> Limit.model_validate({"name": "team-a", "usd": 5}).usd
5.0
>>> try:
...     Limit.model_validate({"name": "team\\x00a", "usd": 5})
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["msg"])
('name',) the string holds a NUL character or an unpaired surrogate
>>> try:
...     Limit.model_validate({"name": "team-a", "usd": False})
... except ValidationError as exc:
...     print(exc.errors()[0]["type"])
float_type
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from finops.common.name_characters import name_refusal, refused_character

Number = Annotated[float, Strict()]
"""A JSON number: an integer or a float, never a boolean or a numeric string."""
Count = Annotated[int, Strict()]
"""A JSON integer, never a float with no fraction, a boolean or a numeric string."""
Flag = Annotated[bool, Strict()]
"""``true`` or ``false``, never ``1``, ``"yes"`` or ``"true"``."""


def _label(value: str) -> str:
    char = refused_character(value)
    if char is not None:
        raise PydanticCustomError("invalid_label", "{refusal}", {"refusal": name_refusal(char)})
    if value != value.strip():
        raise PydanticCustomError(
            "invalid_label", "a label must not start or end with a space (or another blank)"
        )
    return value


def _name(value: str) -> str:
    char = refused_character(value)
    if char is not None:
        raise PydanticCustomError("control_character", "{refusal}", {"refusal": name_refusal(char)})
    return value


NameText = Annotated[str, AfterValidator(_name)]
"""A name a request body gives that events carry too (an experiment's task type, a variant's
model and provider): refused, type ``control_character``, when it holds a character no name
may hold (:mod:`finops.common.name_characters`), as ingest and the SDK refuse it in an event
(an experiment whose variant's model held one could never be run: the SDK refuses the call)."""

Label = Annotated[str, AfterValidator(_label)]
"""A name people read and tell apart (an experiment's, a variant's): the characters of any
name (:mod:`finops.common.name_characters`: no control character, line separator, bidi
override or zero-width character; a variant's name is an event's ``experiment.variant``),
and no surrounding blanks, so ``" lead"`` is not a second ``"lead"`` and a blank name is
refused. Event names keep surrounding spaces: ingest stores them as agents send them."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def holds_unstorable_text(value: Any) -> bool:
    """Whether ``value`` (a string, or JSON containers of them) holds a NUL or lone surrogate.

    Keys count as much as values: both end up in PostgreSQL.
    """
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(holds_unstorable_text(k) or holds_unstorable_text(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_unstorable_text(item) for item in value)
    return False


def unstorable_text(value: Any, loc: tuple[str | int, ...] = ()) -> list[InitErrorDetails]:
    """An ``invalid_text`` error for each string of ``value`` (at any depth) that holds a NUL
    or a lone surrogate, located at its place (a key's error at the key)."""
    if isinstance(value, str):
        return _invalid_text(value, loc, "string")
    errors: list[InitErrorDetails] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                errors += _invalid_text(key, (*loc, key), "key")
            errors += unstorable_text(item, (*loc, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            errors += unstorable_text(item, (*loc, index))
    return errors


def _invalid_text(text: str, loc: tuple[str | int, ...], what: str) -> list[InitErrorDetails]:
    if _UNSTORABLE.search(text) is None:
        return []
    message = f"the {what} holds a NUL character or an unpaired surrogate"
    # a lone surrogate cannot be written as UTF-8: a key holding one is named with it escaped
    named = tuple(_LONE_SURROGATE.sub(_escaped, p) if isinstance(p, str) else p for p in loc)
    return [
        InitErrorDetails(type=PydanticCustomError("invalid_text", message), loc=named, input=text)
    ]


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


class RequestBody(BaseModel):
    """A request body: finite, closed, storable. Subclass it; see the module doc."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable_text(cls, data: Any) -> Any:
        # before any other validation, each string named by its place (``config.k``, ``0.name``)
        if holds_unstorable_text(data):
            raise ValidationError.from_exception_data(cls.__name__, unstorable_text(data))
        return data
