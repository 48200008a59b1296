"""The names an event carries, which must not hold a control or format character.

A name (the agent, team, project, task type, provider, model, an experiment and its variant,
an id, a config or feature key, the provider's error type and code) is something a person
reads in a table, a log line, a metric label or a terminal, and matches against what they
typed. Ingest refuses one holding a character :mod:`finops.common.name_characters` refuses
(a control character, a line separator, a bidi override or a zero-width character: type
``control_character``, the field named, the character's code point in the message); free
text (an error's message, a header's value, a config's string value) keeps them and is
escaped where printed.

The SDK (``finops.client``, which has no server dependencies) refuses the same fields before
sending: ``tests/unit/client/test_sdk_control_characters.py`` checks that it names the same
paths as :data:`NAME_FIELDS` and :data:`NAME_KEYS`.
"""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from finops.common.events.schemas.call_data import LlmCallDataV1
from finops.common.events.schemas.error_data import ErrorDataV1
from finops.common.events.schemas.fields import Id128, ModelName, Name64
from finops.common.name_characters import NOT_C0, REFUSED_IN_NAMES, refused_character

CONTROL_TYPE = "control_character"

#: a raw character of a JSON text that may be one names refuse (a raw C0 control is no JSON)
_RAW_STR = re.compile(f"[{NOT_C0}]")


def _codes(chars: str) -> list[int]:
    """The code points of the class body ``chars`` (``a-z`` ranges, no escapes)."""
    codes: list[int] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            codes += range(ord(chars[i]), ord(chars[i + 2]) + 1)
            i += 3
        else:
            codes.append(ord(chars[i]))
            i += 1
    return codes


def _utf8_pattern(codes: list[int]) -> tuple[bytes, re.Pattern[bytes]]:
    """The first bytes of the UTF-8 of ``codes``, and a pattern of those encodings: decoding
    a whole body to search it took about 5 us an event."""
    lasts: dict[bytes, list[int]] = {}
    for code in codes:
        encoded = chr(code).encode()
        lasts.setdefault(encoded[:-1], []).append(encoded[-1])
    branches = [
        re.escape(prefix) + b"[" + b"".join(re.escape(bytes([b])) for b in ends) + b"]"
        for prefix, ends in lasts.items()
    ]
    leads = bytes(sorted({chr(code).encode()[0] for code in codes}))
    return leads, re.compile(b"|".join(branches))


def _escape_pattern(codes: list[int]) -> str:
    """The JSON escapes that may decode to one of ``codes``: ``\\n`` and the like, ``\\uXXXX``
    of one (any case), and of the high surrogate of an astral one's pair."""
    hexes: dict[str, list[str]] = {}
    for code in codes:
        if code > 0xFFFF:
            code = 0xD800 + ((code - 0x10000) >> 10)
        digits = f"{code:04x}"
        hexes.setdefault(digits[:3], []).append(digits[3])
    branches = [f"{head}[{''.join(sorted(set(tails)))}]" for head, tails in hexes.items()]
    return r"\\(?:[bfnrt]|u(?i:" + "|".join(branches) + "))"


_CODES = _codes(NOT_C0)
_RAW_LEADS, _RAW_BYTES = _utf8_pattern(_CODES)
_ESCAPE_STR = re.compile(_escape_pattern(list(range(0x20)) + _CODES))
_ESCAPE_BYTES = re.compile(_ESCAPE_STR.pattern.encode())

_NAME_TYPES = (Id128, Name64, ModelName)


def _name_fields(model: type[BaseModel], prefix: str) -> list[str]:
    """The dotted paths of ``model``'s name fields (typed :data:`Id128`, :data:`Name64` or
    :data:`ModelName`, optional or not), nested models included."""
    paths: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        options = (
            get_args(annotation)
            if get_origin(annotation) in (Union, types.UnionType)
            else (annotation,)
        )
        options = tuple(o for o in options if o is not type(None))
        path = f"{prefix}.{name}"
        if any(o in _NAME_TYPES for o in options) or (
            info.metadata and str in options and _has_name_metadata(info)
        ):
            paths.append(path)
        for option in options:
            if isinstance(option, type) and issubclass(option, BaseModel):
                paths += _name_fields(option, path)
    return paths


def _has_name_metadata(info: Any) -> bool:
    """Whether a field declared as a name alias (``task_type: Name64``) kept its constraints
    on the field rather than in its annotation (pydantic unpacks a bare ``Annotated``)."""
    return any(info.metadata == list(get_args(t)[1:]) for t in _NAME_TYPES)


#: every name field of an event, as validate_batch names fields (``data.task_type``)
NAME_FIELDS: tuple[str, ...] = tuple(
    sorted(
        {"source"}
        | set(_name_fields(LlmCallDataV1, "data"))
        | set(_name_fields(ErrorDataV1, "data"))
    )
)
#: objects whose keys are names
NAME_KEYS: tuple[str, ...] = ("data.config", "data.features")


def may_hold_control(text: bytes | bytearray | str) -> bool:
    """Whether JSON ``text`` may decode to a string holding a character names refuse, raw or
    escaped. A false alarm (``\\n``, an escaped backslash, a surrogate pair of another astral
    character) costs only the exact scan of the names."""
    if isinstance(text, str):
        return _RAW_STR.search(text) is not None or _ESCAPE_STR.search(text) is not None
    # byte searches first: an ASCII batch with no backslash or DEL (most) is passed in about
    # 0.01 us an event, where a pattern alone took 2 us; one of other scripts in about 0.1 us
    if b"\\" in text and _ESCAPE_BYTES.search(text):
        return True
    if text.isascii():
        return b"\x7f" in text
    if not any(lead in text for lead in _RAW_LEADS):
        return False
    return _RAW_BYTES.search(text) is not None


def _grouped(paths: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """``paths`` grouped by the object holding them: ``(("data", "experiment"), ("id",
    "variant"))``, so a scan looks each object up once."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        *parent, name = path.split(".")
        groups.setdefault(tuple(parent), []).append(name)
    return tuple((parent, tuple(names)) for parent, names in groups.items())


_FIELD_GROUPS = _grouped(NAME_FIELDS)
_KEY_PARENTS = tuple(tuple(path.split(".")) for path in NAME_KEYS)


def _at(value: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def control_fields(event: Any) -> list[tuple[str, str]]:
    """The dotted paths of ``event`` (a decoded JSON event) whose name holds a character
    names refuse, each with the first such character: a name field's value, or a key of an
    object whose keys are names."""
    holders = [(parent, names, _at(event, parent)) for parent, names in _FIELD_GROUPS]
    key_holders = [(parent, _at(event, parent)) for parent in _KEY_PARENTS]
    texts = [
        value
        for _, names, holder in holders
        if isinstance(holder, dict)
        for value in (holder.get(name) for name in names)
        if isinstance(value, str)
    ]
    texts += [key for _, keys in key_holders if isinstance(keys, dict) for key in keys]
    # one search over them all first: most events that reach this scan hold a control
    # character in free text only (an error message's line breaks)
    if not REFUSED_IN_NAMES.search("".join(t for t in texts if isinstance(t, str))):
        return []
    found = [
        (".".join((*parent, name)), char)
        for parent, names, holder in holders
        if isinstance(holder, dict)
        for name in names
        if isinstance(value := holder.get(name), str) and (char := refused_character(value))
    ]
    found += [
        (".".join((*parent, key)), char)
        for parent, keys in key_holders
        if isinstance(keys, dict)
        for key in keys
        if isinstance(key, str) and (char := refused_character(key))
    ]
    return sorted(found)
