"""Event times (epoch seconds) that the time-based aggregates can represent.

The schemas accept any RFC 3339 time with an offset, so a consumer may see 9999-12-31T23:00-05:00
(year 10000 in UTC) or 0001-01-01T00:00+01:00 (year 0). Windows, budget periods and anomaly
windows start and end at UTC times that :class:`datetime.datetime` must be able to show, so
they take only times in ``[WINDOWABLE_FROM, WINDOWABLE_UNTIL)``: years 1 to 9999 in UTC, less
the last day, so that a window of up to a day still ends within year 9999. Totals count every
event. Ingest refuses far smaller deviations (its clock skew and retention settings); this
range is the last line for events that reached a topic some other way.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["WINDOWABLE_FROM", "WINDOWABLE_UNTIL", "epoch_seconds", "iso_utc", "windowable"]

WINDOWABLE_FROM = datetime(1, 1, 1, tzinfo=UTC).timestamp()
WINDOWABLE_UNTIL = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
_MIN_TS = WINDOWABLE_FROM
_MAX_TS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()  # whole seconds: exact


def windowable(ts: float) -> bool:
    """Whether every window (up to a day long) holding ``ts`` starts and ends in years 1-9999.

    >>> windowable(datetime(9999, 12, 30, 23, tzinfo=UTC).timestamp())
    True
    >>> windowable(datetime(9999, 12, 31, tzinfo=UTC).timestamp())
    False
    """
    return WINDOWABLE_FROM <= ts < WINDOWABLE_UNTIL


def iso_utc(ts: float) -> str:
    """``ts`` as RFC 3339 in UTC (``...Z``); clamped to what :class:`datetime` represents, so
    formatting never fails, whatever a restored state holds.

    >>> iso_utc(0)
    '1970-01-01T00:00:00Z'
    >>> iso_utc(1e12), iso_utc(-1e12)
    ('9999-12-31T23:59:59Z', '0001-01-01T00:00:00Z')
    """
    clamped = min(max(ts, _MIN_TS), _MAX_TS)
    return datetime.fromtimestamp(clamped, UTC).isoformat().replace("+00:00", "Z")


def epoch_seconds(value: datetime | float | int | str) -> float:
    """``value`` (a datetime, naive meaning UTC; RFC 3339 text; or epoch seconds) as epoch
    seconds.

    >>> epoch_seconds(datetime(1970, 1, 2)), epoch_seconds("1970-01-01T00:01:00Z"), epoch_seconds(5)
    (86400.0, 60.0, 5.0)
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        return epoch_seconds(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return float(value)
