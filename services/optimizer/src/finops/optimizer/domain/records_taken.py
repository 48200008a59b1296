"""Which records of the agents' logs were taken already (pure domain code, no I/O).

An event id counted already arrives either in a record read again (the same record: forwarded
twice by partitioned learning's forwarders, whose at-least-once delivery re-sends after a
restart or a rebalance what they had not committed) or in a record of its own (an agent sent
the event again). :class:`RecordsTaken` tells them apart by the record itself: where it was
read (``"topic:partition"`` and offset of the log the agents' events were written to) and the
fingerprint of its event id. A record read again has both; an agent's resend sits at another
offset; and a record of a log replaced since (a new broker, the topic recreated, whose offsets
start again at 0) holds another event than the old log's record at the same offset, so a
resend read first from a replaced log is not mistaken for one read again, whatever offsets the
old log had taken.

It remembers the last :data:`RECORDS_PER_PARTITION` records taken from each source partition
(between that many and twice as many): a forwarder commits its offsets after each poll (at most
2,000 records), so what it sends again is well within them; a record read again from further
back counts as an event sent again.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

#: records remembered per source partition (at least; up to twice as many)
RECORDS_PER_PARTITION = 10_000


class RecordsTaken:
    """The records taken from each source partition: offset -> fingerprint of its event id.

    >>> taken = RecordsTaken()
    >>> taken.read_again("agent.cost.v1:0", 7, 0xA1, new=True)
    False
    >>> taken.read_again("agent.cost.v1:0", 7, 0xA1, new=False)  # the same record again
    True
    >>> taken.read_again("agent.cost.v1:0", 8, 0xA1, new=False)  # the event sent again
    False
    >>> taken.read_again("agent.cost.v1:0", 3, 0xB2, new=False)  # another log's record 3
    False
    """

    __slots__ = ("_taken", "per_partition")

    def __init__(self, per_partition: int = RECORDS_PER_PARTITION) -> None:
        self.per_partition = per_partition
        self._taken: dict[str, dict[int, int]] = {}

    def read_again(self, partition: str, offset: int, fp: int, *, new: bool) -> bool:
        """Note a record taken (its event id's fingerprint ``fp``, ``new`` when that id was not
        counted before); True when it is a record taken already: the same event at the same
        offset of the same source partition."""
        records = self._taken.get(partition)
        if records is None:
            records = self._taken[partition] = {}
        elif not new and records.get(offset) == fp:
            return True
        records[offset] = fp
        if len(records) > 2 * self.per_partition:  # keep the newest ones (insertion order)
            kept = list(records.items())[-self.per_partition :]
            records.clear()
            records.update(kept)
        return False

    def forget(self, partitions: Iterable[str]) -> None:
        """Drop what was taken from these source partitions (their log is another one now)."""
        for partition in partitions:
            self._taken.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(r) for r in self._taken.values())

    def to_state(self) -> dict[str, Any]:
        """Per partition, the (offset, fingerprint) pairs in the order taken, packed."""
        return {
            "per_partition": self.per_partition,
            "partitions": {p: _pack(r) for p, r in self._taken.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> RecordsTaken:
        """The records of :meth:`to_state`; none from a state written before they were kept
        (the records read again from then on count as events sent again until taken anew)."""
        if not state:
            return cls()
        taken = cls(int(state["per_partition"]))
        taken._taken = {str(p): _unpack(blob) for p, blob in state["partitions"].items()}
        return taken


def _pack(records: Mapping[int, int]) -> str:
    arr = array("Q")
    for offset, fp in records.items():
        arr.append(offset)
        arr.append(fp)
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def _unpack(blob: str) -> dict[int, int]:
    arr = array("Q")
    arr.frombytes(base64.b64decode(blob))
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return dict(zip(arr[::2], arr[1::2], strict=True))
