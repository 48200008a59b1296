"""The values an event may carry: what JSON writes, with any library's numbers as plain ones.

An event holding a value JSON cannot carry, queued, made its whole batch fail to encode at
every send for as long as the client ran: :func:`json_values` refuses it when it is recorded,
naming it. Numbers of other types (numpy's ``int64`` and ``float32``, anything registered as
:class:`numbers.Integral` or :class:`numbers.Real`) are what agents send from their metrics
and extractors: they become ``int`` and ``float``. The values are walked, not encoded (the
batch is encoded once, when it is sent).
"""

from __future__ import annotations

import numbers
from typing import Any, TypeGuard

#: the keys of a dict JSON carries: strings, and the scalars ``json.dumps`` writes as strings
JSON_KEYS = (str, int, float, bool, type(None))
ALLOWED = (
    "give a number, a string, a bool, None, a list or a dict (whose keys are strings; "
    "numbers, bools and None as keys are sent as strings)"
)


def json_values(value: Any, path: str) -> Any:
    """``value`` as JSON carries it (numbers of other types made ``int``/``float``, tuples
    lists), or a ``ValueError`` naming (from ``path``) the first value it cannot carry.

    >>> json_values({"quality": 0.9, "usage": {"input_tokens": 3, 7: (1, None)}}, "data")
    {'quality': 0.9, 'usage': {'input_tokens': 3, 7: [1, None]}}
    >>> from decimal import Decimal
    >>> json_values({"usage": {"cost": Decimal("0.1")}}, "data")
    Traceback (most recent call last):
    ...
    ValueError: data.usage.cost: Decimal('0.1') (Decimal) cannot be sent as JSON; give a ...
    >>> shared = [1]
    >>> json_values({"a": shared, "b": shared}, "data")  # the same list twice is no cycle
    {'a': [1], 'b': [1]}
    """
    return _plain(value, path, set())


def is_number(value: Any) -> TypeGuard[float]:
    """A real number (of any library), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: Any) -> int | float | bool | None:
    """``value`` as a plain number (numpy's bool as a bool), or None when it is none."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) == "bool":
        return bool(value)  # numpy's bool (not registered as a number)
    return None


def _plain(value: Any, path: str, within: set[int]) -> Any:
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return value
    number = _number(value)
    if number is not None:
        return number
    if not isinstance(value, (dict, list, tuple)):
        raise ValueError(f"{path}: {value!r:.80} ({type(value).__name__}) {_CANNOT}")
    if id(value) in within:  # only the containers on the way here: a value met twice is fine
        raise ValueError(f"{path}: holds itself (a circular reference) {_CANNOT}")
    within.add(id(value))
    try:
        if isinstance(value, dict):
            return {
                _key(key, path): _plain(item, f"{path}.{key}", within)
                for key, item in value.items()
            }
        return [_plain(item, f"{path}[{i}]", within) for i, item in enumerate(value)]
    finally:
        within.discard(id(value))


def _key(key: Any, path: str) -> Any:
    if isinstance(key, JSON_KEYS):
        return key
    number = _number(key)
    if number is None:
        raise ValueError(f"{path}: the key {key!r:.80} ({type(key).__name__}) {_CANNOT}")
    return number


_CANNOT = f"cannot be sent as JSON; {ALLOWED}"
