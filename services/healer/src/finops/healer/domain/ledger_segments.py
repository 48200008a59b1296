"""Which parts of a large ordered collection changed since its last checkpoint (pure: no I/O).

The healing ledger remembers up to :data:`~finops.healer.domain.healing_stats.MAX_PENDING`
advices and as many healed chains. At that size the whole ledger is about 60 MB of JSON:
converting, encoding and compressing all of it took about two seconds of CPU, every
checkpoint (every 5 s by default), and wrote 12 MB to PostgreSQL each time. Yet between two
checkpoints only a few hundred entries change: the advices given since, the ones resolved, the
oldest forgotten.

So each key gets a sequence number when it first arrives, and keys are grouped in segments of
:data:`SEGMENT_SIZE` consecutive numbers. A :class:`SegmentIndex` knows each segment's keys and
which segments changed; a checkpoint writes only those, and removes a segment once all its keys
are forgotten. A key re-added after it was forgotten gets a new number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: keys a segment holds: a checkpoint rewrites a changed segment whole
SEGMENT_SIZE = 1_000


@dataclass
class SegmentIndex:
    """Keys of an ordered collection by segment, and the segments changed since last taken.

    Parameters
    ----------
    segment_size
        Consecutive sequence numbers a segment holds.

    Examples
    --------
    >>> index = SegmentIndex(segment_size=2)
    >>> [index.add(key) for key in "abc"]
    [0, 0, 1]
    >>> index.take_changed()
    [0, 1]
    >>> index.keys(0), index.keys(1)
    (['a', 'b'], ['c'])
    >>> index.touch("b")
    >>> index.forget("c")  # its segment now holds nothing: a checkpoint removes it
    >>> index.take_changed(), index.keys(1)
    ([0, 1], [])
    >>> index.take_changed()
    []
    """

    segment_size: int = SEGMENT_SIZE
    next_seq: int = 0
    #: key -> the segment it was added to
    segment_of: dict[str, int] = field(default_factory=dict)
    #: segment -> its keys in the order they were added (a dict as an ordered set)
    members: dict[int, dict[str, None]] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)

    def add(self, key: str) -> int:
        """Number a new key (one already here only changes its segment); its segment."""
        segment = self.segment_of.get(key)
        if segment is None:
            segment = self.next_seq // self.segment_size
            self.next_seq += 1
            self.segment_of[key] = segment
            self.members.setdefault(segment, {})[key] = None
        self.changed.add(segment)
        return segment

    def touch(self, key: str) -> None:
        """``key``'s entry changed: its segment is written again."""
        self.changed.add(self.segment_of[key])

    def forget(self, key: str) -> None:
        """``key`` is no longer remembered; its segment is written without it."""
        segment = self.segment_of.pop(key)
        keys = self.members[segment]
        del keys[key]
        if not keys:
            del self.members[segment]
        self.changed.add(segment)

    def keys(self, segment: int) -> list[str]:
        """The keys of ``segment`` now, in the order they were added (none: removed)."""
        return list(self.members.get(segment, ()))

    def take_changed(self) -> list[int]:
        """The segments changed since the last call, in order; from now on none is."""
        changed = sorted(self.changed)
        self.changed.clear()
        return changed

    def mark_changed(self, segments: list[int]) -> None:
        """Mark ``segments`` changed again (a checkpoint that took them failed)."""
        self.changed.update(segments)

    def mark_all_changed(self) -> None:
        """Every segment is to be written (the checkpoint that held them is gone)."""
        self.changed.update(self.members)
