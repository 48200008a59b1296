"""The client's settings read and checked at construction: what hangs or breaks is refused
with a ``ValueError`` naming it (``batch_size=0`` made the sender spin on empty batches,
holding the event loop for ever); what merely looks unusual works (``max_buffer=1e6`` or
``math.inf``, numpy's integers, ``request_timeout_s=None``, ``max_backoff_s=0``)."""

from __future__ import annotations

import math
import operator
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from finops.client._answers import LOCAL_URLS
from finops.client._json_values import is_number
from finops.client.errors import InvalidSetting


def count(name: str, value: Any, *, unbounded: bool = False) -> int | float:
    """A count of at least 1 as an ``int`` (from an integral float or numpy's integer too),
    or ``math.inf`` when ``unbounded`` may be asked for.

    >>> count("max_buffer", 1e6), count("max_buffer", float("inf"), unbounded=True)
    (1000000, inf)
    >>> count("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer of at least 1, not 0
    """
    if is_number(value):
        if unbounded and value == math.inf:
            return math.inf
        try:
            whole: int | None = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            number = float(value)
            whole = int(number) if number.is_integer() else None
        if whole is not None and whole >= 1:
            return whole
    more = " (or math.inf: unbounded)" if unbounded else ""
    raise ValueError(f"{name} must be an integer of at least 1{more}, not {value!r}")


def seconds(name: str, value: Any, *, zero: bool) -> float:
    """A finite number of seconds, above 0 (or at least 0 when ``zero`` is allowed)."""
    if is_number(value):
        number = float(value)
        if math.isfinite(number) and (number > 0 or (zero and number == 0)):
            return number
    least = "at least 0" if zero else "above 0"
    raise ValueError(f"{name} must be a number of seconds {least}, not {value!r}")


def request_timeout(value: Any) -> float | httpx.Timeout | None:
    """``request_timeout_s``: seconds above 0, an ``httpx.Timeout``, or None (no timeout,
    as httpx reads it). A timeout of 0 timed every request out, retried for ever."""
    if value is None or isinstance(value, httpx.Timeout):
        return value
    try:
        return seconds("request_timeout_s", value, zero=False)
    except ValueError:
        raise ValueError(
            f"request_timeout_s must be a number of seconds above 0, an httpx.Timeout or "
            f"None (no timeout), not {value!r}"
        ) from None


def url(given: str | None, service: str) -> str:
    """The address of ``service``: ``given``, else ``FINOPS_<SERVICE>_URL``, else the local
    stack's port; without a trailing slash. One without an ``http://`` or ``https://`` scheme
    or a host is refused with :class:`InvalidSetting` naming where it came from: httpx cannot
    send to it, and delivery retried it for ever.

    >>> url("http://127.0.0.1:8002/", "ingest")
    'http://127.0.0.1:8002'
    >>> url("127.0.0.1:8002", "ingest")
    Traceback (most recent call last):
    ...
    finops.client.errors.InvalidSetting: ingest_url must be an http:// or https:// URL such as ...
    """
    variable = f"FINOPS_{service.upper()}_URL"
    from_environment = os.environ.get(variable)
    address = given or from_environment or LOCAL_URLS[service]
    problem = _url_problem(address)
    if problem is not None:
        source = f"{service}_url" if given else variable
        raise InvalidSetting(
            f"{source} must be an http:// or https:// URL such as {LOCAL_URLS[service]}, not "
            f"{address!r} ({problem})"
        )
    return address.rstrip("/")


def _url_problem(address: str) -> str | None:
    try:
        parts = urlsplit(address.strip())
    except ValueError as exc:  # an unclosed IPv6 bracket: 'http://[::1'
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "no http:// or https:// scheme"
    if not parts.hostname:
        return "no host"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "the port is not a number from 0 to 65535"
    return None


def api_key(given: str | None, token: str | None) -> str | None:
    """The API key: ``given``, else ``FINOPS_API_KEY`` unless a ``token`` is given; a
    ``ValueError`` when there is neither key nor token."""
    if not (given or token):
        given = os.environ.get("FINOPS_API_KEY")
    if not (given or token):
        raise ValueError(
            "give an api_key (or set FINOPS_API_KEY; it is exchanged for tokens) or a bearer token"
        )
    return given


def overflow(policy: Any) -> None:
    """A ``ValueError`` for an overflow policy that is none of the three."""
    if policy not in ("block", "drop_oldest", "raise"):
        raise ValueError(f"unknown overflow policy {policy!r}")
