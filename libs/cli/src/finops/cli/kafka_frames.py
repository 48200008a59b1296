"""The few fields of a Kafka request frame the local broker's gate reads (pure, no I/O).

A frame is a 4-byte size, then the request header (api key, api version, correlation id, client
id; flexible versions add tagged fields) and the body. For a produce request the gate needs
``acks``, the body's first field after the transactional id (from version 3).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the api key of Produce
PRODUCE = 0
#: Produce versions whose header and body are "flexible" (compact strings, tagged fields)
_PRODUCE_FLEXIBLE_FROM = 9


@dataclass(frozen=True)
class RequestHeader:
    """What the gate reads of a request; ``acks`` for a produce request only."""

    api_key: int
    api_version: int
    correlation_id: int
    acks: int | None = None


def int32(frame: bytes, at: int) -> int:
    return int.from_bytes(frame[at : at + 4], "big", signed=True)


def _int16(frame: bytes, at: int) -> int:
    return int.from_bytes(frame[at : at + 2], "big", signed=True)


def _uvarint(frame: bytes, at: int) -> tuple[int, int]:
    """An unsigned varint at ``at``: its value and the offset after it."""
    value = shift = 0
    while True:
        byte = frame[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _skip_tagged_fields(frame: bytes, at: int) -> int:
    count, at = _uvarint(frame, at)
    for _ in range(count):
        _, at = _uvarint(frame, at)  # the tag
        size, at = _uvarint(frame, at)
        at += size
    return at


def parse_request(frame: bytes) -> RequestHeader | None:
    """The header of a request ``frame`` (with its size prefix), and a produce request's
    ``acks``; None when the frame is too short to hold them.

    Examples
    --------
    A Produce v7 request (header v1) from client ``c`` with no transactional id and acks=-1:

    >>> body = (b"\\x00\\x00" b"\\x00\\x07" b"\\x00\\x00\\x00\\x2a" b"\\x00\\x01c"
    ...         b"\\xff\\xff" b"\\xff\\xff" b"\\x00\\x00\\x75\\x30")
    >>> parse_request(len(body).to_bytes(4, "big") + body)
    RequestHeader(api_key=0, api_version=7, correlation_id=42, acks=-1)

    The same as a flexible Produce v9 (header v2: tagged fields; compact nullable strings):

    >>> body = (b"\\x00\\x00" b"\\x00\\x09" b"\\x00\\x00\\x00\\x2b" b"\\x00\\x01c" b"\\x00"
    ...         b"\\x00" b"\\x00\\x01")
    >>> parse_request(len(body).to_bytes(4, "big") + body).acks
    1

    A Fetch request carries no ``acks``; a truncated frame gives None:

    >>> parse_request(b"\\x00\\x00\\x00\\x0a" b"\\x00\\x01\\x00\\x0b\\x00\\x00\\x00\\x07\\xff\\xff")
    RequestHeader(api_key=1, api_version=11, correlation_id=7, acks=None)
    >>> parse_request(b"\\x00\\x00\\x00\\x03\\x00\\x00\\x00") is None
    True
    """
    try:
        api_key, api_version = _int16(frame, 4), _int16(frame, 6)
        correlation_id = int32(frame, 8)
        client_id_length = _int16(frame, 12)
        at = 14 + max(client_id_length, 0)
        if len(frame) < at:
            return None
        if api_key != PRODUCE:
            return RequestHeader(api_key, api_version, correlation_id)
        flexible = api_version >= _PRODUCE_FLEXIBLE_FROM
        if flexible:
            at = _skip_tagged_fields(frame, at)
        if api_version >= 3:  # the transactional id (nullable string)
            if flexible:
                length_plus_one, at = _uvarint(frame, at)
                at += max(length_plus_one - 1, 0)
            else:
                at += 2 + max(_int16(frame, at), 0)
        if len(frame) < at + 2:
            return None
        return RequestHeader(api_key, api_version, correlation_id, _int16(frame, at))
    except IndexError:
        return None
