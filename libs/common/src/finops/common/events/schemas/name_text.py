"""The names an event carries, which must not hold a control character.

A name (the agent, team, project, task type, provider, model, an experiment and its variant,
an id, a config or feature key, the provider's error type and code) is something a person
reads in a table, a log line, a metric label or a terminal, and matches against what they
typed: a line break (U+2028 and U+2029 too), a tab, an ANSI escape (``\\x1b[2J``) or a C1
control in one splits a log line, forges a table row, drives the terminal or makes two names
look alike. Ingest refuses them (type ``control_character``, the field named); free text (an
error's message, a header's value, a config's string value) keeps them and is escaped where
printed.

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

#: C0 (U+0000-U+001F), DEL and C1 (U+007F-U+009F): Unicode's control characters (Cc); and the
#: line and paragraph separators (U+2028, U+2029), which are no Cc but end a line in many log
#: viewers and editors as \n does
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_MESSAGE = (
    "a name must not hold a control character (U+0000-U+001F, U+007F-U+009F) or a line "
    "separator (U+2028, U+2029)"
)
CONTROL_TYPE = "control_character"

#: what a JSON text holding a control character in a string must contain: the escape of one
#: (``\u001b``, ``\n``, ``\u2028``; a raw C0 character is no JSON) or a raw DEL, C1 or
#: line separator character (UTF-8 ``\x7f``, ``\xc2\x80``-``\xc2\x9f``, ``\xe2\x80\xa8``,
#: ``\xe2\x80\xa9``). A false alarm (``\\n``, an escaped backslash) costs only the exact
#: scan of the names.
_MAY_HOLD_BYTES = re.compile(
    rb"\\u00(?:[0189][0-9a-fA-F]|7[fF])|\\u202[89]|\\[bfnrt]|\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]"
)
_MAY_HOLD_STR = re.compile(
    r"\\u00(?:[0189][0-9a-fA-F]|7[fF])|\\u202[89]|\\[bfnrt]|[\x7f-\x9f\u2028\u2029]"
)

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
    """Whether JSON ``text`` may decode to a string holding a control character."""
    if isinstance(text, str):
        return _MAY_HOLD_STR.search(text) is not None
    # byte searches first: a batch with no backslash, DEL, C1 lead byte or line separator
    # (most) is passed in about 0.01 us an event, where the pattern alone took 2 us
    if (
        b"\\" not in text
        and b"\x7f" not in text
        and b"\xc2" not in text
        and b"\xe2\x80\xa8" not in text
        and b"\xe2\x80\xa9" not in text
    ):
        return False
    return _MAY_HOLD_BYTES.search(text) is not None


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


def control_fields(event: Any) -> list[str]:
    """The dotted paths of ``event`` (a decoded JSON event) whose name holds a control
    character: a name field's value, or a key of an object whose keys are names."""
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
    if not CONTROL_CHARACTER.search("".join(t for t in texts if isinstance(t, str))):
        return []
    found = [
        ".".join((*parent, name))
        for parent, names, holder in holders
        if isinstance(holder, dict)
        for name in names
        if isinstance(value := holder.get(name), str) and CONTROL_CHARACTER.search(value)
    ]
    found += [
        ".".join((*parent, key))
        for parent, keys in key_holders
        if isinstance(keys, dict)
        for key in keys
        if isinstance(key, str) and CONTROL_CHARACTER.search(key)
    ]
    return sorted(found)
