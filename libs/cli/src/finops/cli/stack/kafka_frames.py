"""The few fields of a Kafka request frame the local broker's gate reads (pure, no I/O).

A frame is a 4-byte size, then the request header (api key, api version, correlation id, client
id; flexible versions add tagged fields) and the body. For a produce request the gate needs
``acks``, the body's first field after the transactional id (from version 3); for a request
that reads or changes a consumer group's state (:data:`GROUP_REQUESTS`), the group id, the
body's first field.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the api key of Produce
PRODUCE = 0
#: Produce versions whose header and body are "flexible" (compact strings, tagged fields)
_PRODUCE_FLEXIBLE_FROM = 9

#: the requests about one consumer group whose body starts with its group id, each with the
#: version from which it is flexible: OffsetCommit, OffsetFetch (a list of groups from
#: version 8: not read), JoinGroup, Heartbeat, LeaveGroup, SyncGroup
GROUP_REQUESTS = {8: 8, 9: 6, 11: 6, 12: 4, 13: 4, 14: 4}
_OFFSET_FETCH, _OFFSET_FETCH_GROUPS_FROM = 9, 8


@dataclass(frozen=True)
class RequestHeader:
    """What the gate reads of a request; ``acks`` for a produce request only, ``group`` for a
    request of :data:`GROUP_REQUESTS` only."""

    api_key: int
    api_version: int
    correlation_id: int
    acks: int | None = None
    group: str | None = None


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
    RequestHeader(api_key=0, api_version=7, correlation_id=42, acks=-1, group=None)

    The same as a flexible Produce v9 (header v2: tagged fields; compact nullable strings):

    >>> body = (b"\\x00\\x00" b"\\x00\\x09" b"\\x00\\x00\\x00\\x2b" b"\\x00\\x01c" b"\\x00"
    ...         b"\\x00" b"\\x00\\x01")
    >>> parse_request(len(body).to_bytes(4, "big") + body).acks
    1

    A Fetch request carries no ``acks``; a truncated frame gives None:

    >>> parse_request(b"\\x00\\x00\\x00\\x0a" b"\\x00\\x01\\x00\\x0b\\x00\\x00\\x00\\x07\\xff\\xff")
    RequestHeader(api_key=1, api_version=11, correlation_id=7, acks=None, group=None)
    >>> parse_request(b"\\x00\\x00\\x00\\x03\\x00\\x00\\x00") is None
    True

    A Heartbeat v1 (header v1) of group ``g1``, and the same as a flexible v4 (header v2; a
    compact string):

    >>> body = b"\\x00\\x0c" b"\\x00\\x01" b"\\x00\\x00\\x00\\x05" b"\\x00\\x01c" b"\\x00\\x02g1"
    >>> parse_request(len(body).to_bytes(4, "big") + body)
    RequestHeader(api_key=12, api_version=1, correlation_id=5, acks=None, group='g1')
    >>> body = (b"\\x00\\x0c" b"\\x00\\x04" b"\\x00\\x00\\x00\\x06" b"\\x00\\x01c" b"\\x00"
    ...         b"\\x03g1")
    >>> parse_request(len(body).to_bytes(4, "big") + body).group
    'g1'
    """
    try:
        api_key, api_version = _int16(frame, 4), _int16(frame, 6)
        correlation_id = int32(frame, 8)
        client_id_length = _int16(frame, 12)
        at = 14 + max(client_id_length, 0)
        if len(frame) < at:
            return None
        if api_key in GROUP_REQUESTS:
            return _with_group(frame, at, RequestHeader(api_key, api_version, correlation_id))
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


def _with_group(frame: bytes, at: int, header: RequestHeader) -> RequestHeader | None:
    """``header`` with the group id that starts the body at ``at`` (after the client id); as
    it is when the request names no single group (OffsetFetch from version 8)."""
    if header.api_key == _OFFSET_FETCH and header.api_version >= _OFFSET_FETCH_GROUPS_FROM:
        return header
    if header.api_version >= GROUP_REQUESTS[header.api_key]:  # flexible: compact string
        at = _skip_tagged_fields(frame, at)
        length_plus_one, at = _uvarint(frame, at)
        length = length_plus_one - 1
    else:
        length, at = _int16(frame, at), at + 2
    if length < 0 or len(frame) < at + length:
        return None
    group = frame[at : at + length].decode("utf-8", errors="replace")
    return RequestHeader(header.api_key, header.api_version, header.correlation_id, group=group)
