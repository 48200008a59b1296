"""The names an event carries, refused with a control or format character before anything is
queued.

Ingest refuses an event whose name (its agent, task type, model, an id, a config or feature
key, ...) holds a control character, a line separator or a format character (a bidi override,
a zero-width space): 422 ``invalid_events``, type ``control_character``, the field named, the
character's code point in the message (``finops.common.name_characters``, the one rule, and
``finops.common.events.schemas.name_text``, which this SDK cannot import: it has no server
dependencies). The SDK gives the same answer before sending, as a ``ValueError`` naming the
same field and code point, so an agent learns it where it passed the name, not from
``EventsRejected`` at ``flush()``. ``tests/unit/client/test_sdk_control_characters.py`` checks
that the pattern, the message and these paths are ingest's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

#: a copy of ``finops.common.name_characters.REFUSED_IN_NAMES``: control characters (Cc), the
#: line and paragraph separators (Zl, Zp) and the format characters (Cf)
REFUSED_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
#: a copy of ``finops.common.name_characters.NAME_CHARACTERS_MESSAGE``
NAME_CHARACTERS_MESSAGE = (
    "a name must not hold a control character (U+0000-U+001F, U+007F-U+009F), a line or "
    "paragraph separator (U+2028, U+2029) or an invisible format character (a bidi override "
    "or isolate, a zero-width space or joiner, a byte order mark: Unicode category Cf)"
)


#: copies of ``finops.common.name_characters``'s joiner rule: the zero-width non-joiner and
#: joiner are taken after a virama, and the non-joiner between two letters of a joining script
ZWNJ, ZWJ = "\u200c", "\u200d"
JOINING_LETTERS = re.compile(
    "[\u0620-\u06ff\u0700-\u074f\u0750-\u077f\u07c0-\u07ff\u0860-\u08ff"
    "\u1800-\u18af\ufb50-\ufdff\ufe70-\ufeff]"
)
VIRAMA = 9


def joiner_allowed(value: str, at: int) -> bool:
    """A copy of ``finops.common.name_characters.joiner_allowed``."""
    if at > 0 and unicodedata.combining(value[at - 1]) == VIRAMA:
        return True
    if value[at] != ZWNJ:
        return False
    before, after = at - 1, at + 1
    while before >= 0 and unicodedata.category(value[before]) == "Mn":
        before -= 1
    while after < len(value) and unicodedata.category(value[after]) == "Mn":
        after += 1
    return (
        before >= 0
        and after < len(value)
        and all(
            unicodedata.category(value[i]).startswith("L") and JOINING_LETTERS.match(value[i])
            for i in (before, after)
        )
    )


def refused_character(value: str) -> str | None:
    """A copy of ``finops.common.name_characters.refused_character``."""
    for found in REFUSED_IN_NAMES.finditer(value):
        if found[0] not in (ZWNJ, ZWJ) or not joiner_allowed(value, found.start()):
            return found[0]
    return None


def name_refusal(char: str) -> str:
    """A copy of ``finops.common.name_characters.name_refusal``."""
    name = unicodedata.name(char, "")
    return f"{NAME_CHARACTERS_MESSAGE}; got U+{ord(char):04X}" + (f" ({name})" if name else "")


#: the name fields of an event, as ingest names them
NAME_FIELDS = (
    "data.agent_id",
    "data.config.prompt_version",
    "data.decision.recommendation_id",
    "data.error.provider_code",
    "data.error.type",
    "data.experiment.id",
    "data.experiment.variant",
    "data.model",
    "data.project",
    "data.provider",
    "data.remedy.advice_id",
    "data.task_type",
    "data.team",
    "source",
)
#: objects whose keys are names
NAME_KEYS = ("data.config", "data.features")


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def refuse_control_characters(event: Mapping[str, Any]) -> None:
    r"""A ``ValueError`` naming the first name of ``event`` (an event as sent) that holds a
    character names refuse, and that character's code point; nothing when none does.

    >>> refuse_control_characters({"data": {"task_type": "qa", "features": {"len": 1.0}}})
    >>> try:
    ...     refuse_control_characters({"data": {"task_type": "q\u202ea"}})
    ... except ValueError as exc:
    ...     print(str(exc).split(": ")[0], "...", str(exc).split("; ")[-1])
    data.task_type ... got U+202E (RIGHT-TO-LEFT OVERRIDE) in 'q\u202ea'
    """
    for path in NAME_FIELDS:
        value = _at(event, path)
        if isinstance(value, str) and (char := refused_character(value)):
            raise ValueError(f"{path}: {name_refusal(char)} in {value!r}")
    for path in NAME_KEYS:
        keys = _at(event, path)
        if isinstance(keys, Mapping):
            for key in keys:
                if isinstance(key, str) and (char := refused_character(key)):
                    raise ValueError(f"{path}.{key}: {name_refusal(char)} in {key!r}")
