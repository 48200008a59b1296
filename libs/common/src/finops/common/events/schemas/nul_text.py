"""Strings holding a NUL character, which an event must not carry."""

from __future__ import annotations

from typing import Any

NUL_MESSAGE = "strings must not hold a NUL character"


def _may_hold_nul(text: bytes | bytearray | str) -> bool:
    """Whether JSON ``text`` may decode to a string holding a NUL: only the escape can (JSON
    refuses a raw control character in a string), so most texts skip the field scan."""
    if isinstance(text, str):
        return "\\u0000" in text
    return b"\\u0000" in text


def _nul_fields(value: Any, path: str) -> list[str]:
    """The dotted paths in ``value`` (JSON containers) whose string or key holds a NUL.

    PostgreSQL's text and jsonb cannot store one, so a consumer that stores what an event
    says (the experiments' task types) would fail on it for good.
    """
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += [where] if isinstance(key, str) and "\x00" in key else _nul_fields(item, where)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _nul_fields(item, f"{path}.{i}" if path else str(i))
    return found
