"""The names an event carries, refused with a control character before anything is queued.

Ingest refuses an event whose name (its agent, task type, model, an id, a config or feature
key, ...) holds a control character: 422 ``invalid_events``, type ``control_character``, the
field named (``finops.common.events.schemas.name_text``, which this SDK cannot import: it has
no server dependencies). The SDK gives the same answer before sending, as a ``ValueError``
naming the same field, so an agent learns it where it passed the name, not from
``EventsRejected`` at ``flush()``. ``tests/unit/client/test_sdk_control_characters.py`` checks
that these paths are ingest's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: C0 (U+0000-U+001F), DEL and C1 (U+007F-U+009F): Unicode's control characters (Cc); and the
#: line and paragraph separators (U+2028, U+2029), which end a line in many log viewers
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_MESSAGE = (
    "a name must not hold a control character (U+0000-U+001F, U+007F-U+009F) or a line "
    "separator (U+2028, U+2029)"
)

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
    """A ``ValueError`` naming the first name of ``event`` (an event as sent) that holds a
    control character; nothing when none does.

    >>> refuse_control_characters({"data": {"task_type": "qa", "features": {"len": 1.0}}})
    >>> refuse_control_characters({"data": {"task_type": "q\\na"}})
    Traceback (most recent call last):
    ...
    ValueError: data.task_type: a name must not hold a control character (U+0000-U+001F, \
U+007F-U+009F); got 'q\\na'
    """
    for path in NAME_FIELDS:
        value = _at(event, path)
        if isinstance(value, str) and CONTROL_CHARACTER.search(value):
            raise ValueError(f"{path}: {CONTROL_MESSAGE}; got {value!r}")
    for path in NAME_KEYS:
        keys = _at(event, path)
        if isinstance(keys, Mapping):
            for key in keys:
                if isinstance(key, str) and CONTROL_CHARACTER.search(key):
                    raise ValueError(f"{path}.{key}: {CONTROL_MESSAGE}; got {key!r}")
