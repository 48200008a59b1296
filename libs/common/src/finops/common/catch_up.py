"""How far a reader of a log is from the end offsets it saw at some moment.

A reader of a compacted topic that must not answer (or act) before it has read everything
published up to a moment notes each partition's end offset then, and compares its positions
with them: the optimizer's view of the partition states waits for this before it is ready,
the healer's breakers before they adopt the published states of an upgraded partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class CatchUp:
    """How far a reader of a log still is from the end offsets it saw when it started.

    Parameters
    ----------
    ends
        The log-end offset of each partition at the moment that counts (the reader's start, say).
    positions
        The next offset the reader reads in each partition, as far as it has been told (a
        partition not told yet counts as behind).

    Examples
    --------
    An empty partition is read as soon as its position is known (it is its end):

    >>> catch_up = CatchUp({0: 3, 1: 0, 2: 5})
    >>> catch_up.behind()
    [0, 1, 2]
    >>> catch_up.positions.update({0: 1, 1: 0, 2: 5})
    >>> catch_up.behind()
    [0]
    >>> catch_up.positions[0] = 3
    >>> catch_up.behind()
    []
    """

    ends: Mapping[int, int]
    positions: dict[int, int] = field(default_factory=dict)

    def behind(self) -> list[int]:
        """The partitions not yet read up to their end at that moment."""
        return sorted(p for p, end in self.ends.items() if self.positions.get(p, -1) < end)

    async def behind_now(self, position: Callable[[int], Awaitable[int]]) -> list[int]:
        """The partitions still behind once ``position`` (the reader's next offset in a
        partition, e.g. the consumer's) is asked again for each partition that was behind.

        >>> import asyncio
        >>> read_to = {0: 3, 1: 2}
        >>> async def position(partition: int) -> int:
        ...     return read_to[partition]
        >>> asyncio.run(CatchUp({0: 3, 1: 5}).behind_now(position))
        [1]
        """
        for partition in self.behind():
            self.positions[partition] = await position(partition)
        return self.behind()
