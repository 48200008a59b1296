"""Exactly once in the numbers: a bounded memory of seen event ids (pure domain code, no I/O).

Ids are remembered in an :class:`IdDedupe`: four generations of a 64-bit :func:`fingerprint` of
the UUID (the two 64-bit halves XOR-ed; collision probability ~3e-8 at a million ids); when the
newest generation holds ``capacity / 4`` ids the oldest generation is dropped. Horizon: the last
``0.75 * capacity`` distinct ids are always remembered, up to ``capacity`` (default 1,000,000,
i.e. at 5,000 events/s at least the last 2.5 minutes, at 100 events/s the last 2 hours).
Redeliveries (Kafka at-least-once, SDK retries) fall well within it. The optimizer's spend
analytics, the healer's breakers and its healing stats keep their ids in the checkpoints saved
with their consumer offsets, so their numbers stay exact across restarts.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping
from typing import Any

__all__ = ["IdDedupe", "fingerprint"]

_M64 = (1 << 64) - 1


def fingerprint(event_id: Any) -> int:
    """64-bit fingerprint of a UUID (or anything with an ``int``): the halves XOR-ed."""
    i = event_id.int
    return (i >> 64) ^ (i & _M64)


class IdDedupe:
    """Bounded memory of seen 64-bit fingerprints (generational FIFO).

    ``capacity`` ids are spread over ``generations`` sets; when the newest set is full the
    oldest set is dropped. Always remembers the last ``capacity * (generations - 1) /
    generations`` distinct ids.

    Examples
    --------
    >>> d = IdDedupe(capacity=8, generations=4)
    >>> d.add(1), d.add(1)
    (True, False)
    >>> for i in range(2, 9):
    ...     _ = d.add(i)
    >>> 1 in d, 8 in d
    (True, True)
    >>> d.add(9)  # the first generation (ids 1, 2) is dropped
    True
    >>> 1 in d, 3 in d
    (False, True)
    """

    __slots__ = ("_gen_size", "_gens", "_packed", "capacity", "generations")

    def __init__(self, capacity: int = 1_000_000, generations: int = 4) -> None:
        if generations < 2 or capacity < generations:
            raise ValueError("need generations >= 2 and capacity >= generations")
        self.capacity = capacity
        self.generations = generations
        self._gen_size = capacity // generations
        self._gens: list[set[int]] = [set()]  # oldest first, newest last
        #: id -> (generation, its saved form) of the full generations, which never change
        #: again: a checkpoint packs only the newest generation (shared by copies)
        self._packed: dict[int, tuple[set[int], str]] = {}

    def __contains__(self, fp: int) -> bool:
        return any(fp in g for g in self._gens)

    def __len__(self) -> int:
        return sum(len(g) for g in self._gens)

    def add(self, fp: int) -> bool:
        """Remember ``fp``; False when it was already remembered."""
        gens = self._gens
        for g in gens:
            if fp in g:
                return False
        newest = gens[-1]
        if len(newest) >= self._gen_size:
            newest = set()
            gens.append(newest)
            if len(gens) > self.generations:
                del gens[0]
        newest.add(fp)
        return True

    @property
    def horizon(self) -> int:
        """Number of most recent distinct ids that are guaranteed to be remembered."""
        return self._gen_size * (self.generations - 1)

    def copy(self) -> IdDedupe:
        """An independent copy (a snapshot to serialise elsewhere while this one goes on).

        >>> d = IdDedupe(capacity=8)
        >>> _ = d.add(1)
        >>> c = d.copy()
        >>> _ = d.add(2)
        >>> 1 in c, 2 in c
        (True, False)
        """
        copied = IdDedupe(self.capacity, self.generations)
        # Only the newest generation changes: the full ones are shared, as is their packing.
        copied._gens = [*self._gens[:-1], set(self._gens[-1])]
        copied._packed = self._packed
        return copied

    def resized(self, capacity: int) -> IdDedupe:
        """This memory with another capacity (a setting changed since a checkpoint): its ids
        are added again oldest generation first, so a smaller one keeps the most recent.

        >>> d = IdDedupe(capacity=8, generations=4)
        >>> for fp in range(8):
        ...     _ = d.add(fp)
        >>> small = d.resized(4)
        >>> small.capacity, 7 in small, 0 in small
        (4, True, False)
        >>> d.resized(8) is d
        True
        """
        if capacity == self.capacity:
            return self
        resized = IdDedupe(capacity, self.generations)
        for generation in self._gens:
            for fp in generation:
                resized.add(fp)
        return resized

    def to_state(self) -> dict[str, Any]:
        """The ids as saved: each generation's fingerprints sorted, packed and in base64.

        A full generation is packed once (sorting 250,000 ids takes tens of milliseconds, at
        every checkpoint); only the newest is packed each time.

        >>> d = IdDedupe(capacity=4, generations=2)
        >>> for fp in (3, 1, 2):
        ...     _ = d.add(fp)
        >>> state = d.to_state()
        >>> len(state["ids"]), IdDedupe.from_state(state)._gens
        (2, [{1, 3}, {2}])
        """
        full = {id(g): (g, self._packed_full(g)) for g in self._gens[:-1]}
        self._packed.clear()  # the generations dropped since are forgotten
        self._packed.update(full)
        packed = [text for _, text in full.values()] + [_pack(self._gens[-1])]
        return {"capacity": self.capacity, "generations": self.generations, "ids": packed}

    def _packed_full(self, generation: set[int]) -> str:
        known = self._packed.get(id(generation))
        return known[1] if known is not None and known[0] is generation else _pack(generation)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IdDedupe:
        d = cls(state["capacity"], state["generations"])
        gens: list[set[int]] = []
        for blob in state["ids"]:
            arr = array("Q")
            arr.frombytes(base64.b64decode(blob))
            if sys.byteorder != "little":  # pragma: no cover
                arr.byteswap()
            gens.append(set(arr))
        d._gens = gens or [set()]
        return d


def _pack(generation: set[int]) -> str:
    arr = array("Q", sorted(generation))
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")
