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

It remembers the records taken within the last :data:`OFFSETS_PER_PARTITION` offsets of each
source partition (those up to twice as far back may still be there): a forwarder commits its
offsets after each poll (at most 2,000 records), so what it sends again is well within them;
a record read again from further back counts as an event sent again. Bounded by offsets, not
by records: partitioned learning's engines each take a share of a source partition's records,
and together they keep about that many of them.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

#: how far back from the latest offset taken the records of a source partition are remembered
OFFSETS_PER_PARTITION = 10_000


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

    __slots__ = ("_pruned_at", "_taken", "reach")

    def __init__(self, reach: int = OFFSETS_PER_PARTITION) -> None:
        #: offsets remembered back from the latest taken (up to twice as many)
        self.reach = reach
        self._taken: dict[str, dict[int, int]] = {}
        #: per partition, the offset around which it was last pruned
        self._pruned_at: dict[str, int] = {}

    def read_again(self, partition: str, offset: int, fp: int, *, new: bool) -> bool:
        """Note a record taken (its event id's fingerprint ``fp``, ``new`` when that id was not
        counted before); True when it is a record taken already: the same event at the same
        offset of the same source partition."""
        records = self._taken.get(partition)
        if records is None:
            records = self._taken[partition] = {}
            self._pruned_at[partition] = offset
        elif not new and records.get(offset) == fp:
            return True
        records[offset] = fp
        if abs(offset - self._pruned_at[partition]) > self.reach:
            self._prune(partition, offset)
        return False

    def _prune(self, partition: str, offset: int) -> None:
        """Keep the records within :attr:`reach` offsets of ``offset`` (a replaced
        log's first records drop the old log's, far above them)."""
        reach = self.reach
        self._taken[partition] = {
            o: fp for o, fp in self._taken[partition].items() if abs(o - offset) <= reach
        }
        self._pruned_at[partition] = offset

    def forget(self, partitions: Iterable[str]) -> None:
        """Drop what was taken from these source partitions (their log is another one now)."""
        for partition in partitions:
            self._taken.pop(partition, None)
            self._pruned_at.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(r) for r in self._taken.values())

    def to_state(self, resume_at: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Per partition, the (offset, fingerprint) pairs in the order taken, packed.

        ``resume_at``: where the consumer that took the records resumes from this state
        (``"topic:partition"`` -> the next offset to read), when it reads the source
        partitions themselves (one worker): a record before that offset is never read again by
        it, so only the records at or past it are kept (none, as the offsets of a checkpoint
        follow every record taken; a partition left with none is left out), and a partition
        without an offset keeps them all.
        Partitioned learning's engines read the records forwarded elsewhere, where a forwarder
        can send again a record from before the offsets their own topic resumes from: they
        keep every record (no ``resume_at``).
        """
        at = resume_at or {}
        kept = {
            p: r if p not in at else {o: fp for o, fp in r.items() if o >= at[p]}
            for p, r in self._taken.items()
        }
        return {"reach": self.reach, "partitions": {p: _pack(r) for p, r in kept.items() if r}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> RecordsTaken:
        """The records of :meth:`to_state`; none from a state written before they were kept
        (the records read again from then on count as events sent again until taken anew)."""
        if not state:
            return cls()
        taken = cls(int(state["reach"]))
        for partition, blob in state["partitions"].items():
            records = taken._taken[str(partition)] = _unpack(blob)
            # pruned next once the offsets taken move that far from the latest one saved
            taken._pruned_at[str(partition)] = next(reversed(records), 0)
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
