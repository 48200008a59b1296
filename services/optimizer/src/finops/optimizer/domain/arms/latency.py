"""The sliding-window latency sketch of an arm (mean and p95): :class:`LatencyWindow`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["LatencyWindow", "newest_level", "quantile"]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` as the window reads it (``None`` for none).

    >>> quantile([3.0, 1.0, 2.0], 0.95), quantile([], 0.95)
    (3.0, None)
    """
    return _quantile_of_sorted(sorted(values), q)


def _quantile_of_sorted(s: Sequence[float], q: float) -> float | None:
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def newest_level(values: Sequence[float], min_segment: int = 3) -> int:
    """How many of the newest ``values`` make up their latest level: the split of the series
    in two that best separates their mean ranks (the CUSUM statistic of binary segmentation,
    on ranks: one outlier, a timeout among ordinary latencies, weighs as one rank, not as its
    size), counted from the split to the end; each side holds at least ``min_segment``
    values (all of them when there are fewer than twice that).

    Examples
    --------
    >>> newest_level([5.0, 5.1, 4.9, 5.2, 5.0, 1.0, 1.1, 0.9])
    3
    >>> newest_level([5.0, 5.1, 4.9, 5.2, 5.0, 5.1, 1.0, 1.1, 0.9, 99.0])  # a timeout last
    4
    >>> newest_level([2.0, 1.0])
    2
    """
    n = len(values)
    if n < 2 * min_segment:
        return n
    ranks = _ranks(values)
    total = sum(ranks)
    best_split, best = n, -1.0
    before = sum(ranks[: min_segment - 1])
    for k in range(min_segment, n - min_segment + 1):
        before += ranks[k - 1]
        gap = abs((total - before) / (n - k) - before / k)
        statistic = gap * math.sqrt(k * (n - k) / n)
        if statistic > best:
            best_split, best = k, statistic
    return n - best_split


def _ranks(values: Sequence[float]) -> list[float]:
    """Each value's rank (1 = smallest; ties share their mean rank)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


class LatencyWindow:
    """Sliding window of the last ``size`` latencies with a lazily computed p95.

    Examples
    --------
    >>> lw = LatencyWindow(size=100)
    >>> for i in range(1, 201):
    ...     lw.add(float(i))
    >>> lw.p95(), lw.mean()
    (196.0, 150.5)
    """

    __slots__ = ("_sorted", "buf", "pos", "q", "size", "total")

    def __init__(self, size: int = 256, q: float = 0.95) -> None:
        self.size = size
        self.q = q
        self.buf: list[float] = []
        self.pos = 0
        self.total = 0.0
        self._sorted: list[float] | None = None

    def __len__(self) -> int:
        return len(self.buf)

    def add(self, x: float) -> None:
        if len(self.buf) < self.size:
            self.buf.append(x)
        else:
            self.total -= self.buf[self.pos]
            self.buf[self.pos] = x
            self.pos = (self.pos + 1) % self.size
        self.total += x
        self._sorted = None

    def mean(self) -> float | None:
        return self.total / len(self.buf) if self.buf else None

    def p95(self) -> float | None:
        if not self.buf:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.buf)
        return _quantile_of_sorted(self._sorted, self.q)

    def ordered(self) -> list[float]:
        """The window's latencies, oldest first."""
        return self.buf[self.pos :] + self.buf[: self.pos]

    def keep_recent(self, k: int) -> None:
        """Forget all but the ``k`` most recent values (used on latency drift)."""
        ordered = self.buf[self.pos :] + self.buf[: self.pos]
        self.buf = ordered[-k:] if k > 0 else []
        self.pos = 0
        self.total = sum(self.buf)
        self._sorted = None

    def to_state(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "q": self.q,
            "buf": list(self.buf),
            "pos": self.pos,
            "total": self.total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyWindow:
        lw = cls(size=state["size"], q=state["q"])
        lw.buf = list(state["buf"])
        lw.pos = state["pos"]
        lw.total = state["total"]
        return lw
