"""Latency quantiles: a mergeable, log-bucketed histogram (pure domain code, no I/O).

:class:`LatencySketch` is a DDSketch-style log-bucketed histogram with relative accuracy 1 %
(``gamma = 1.0202``): the reported p-quantile is within 1 % of the true sample at that rank.
Latencies are bounded by the schema (<= 86,400,000 ms), so a sketch never has more than ~1,300
buckets (values below 0.001 ms share a zero bucket); sketches merge exactly, which is how the
``__other__`` bucket of :meth:`.analytics.SpendAnalytics.top_k_with_other` gets its quantiles.

The bucket functions (:func:`latency_index`, :func:`hist_quantile`, :func:`pack_hist`,
:func:`unpack_hist`) work on a plain ``{bucket index: count}`` dict, which is what the spend
aggregates of :mod:`.aggregates` keep on their hot path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["LatencySketch", "hist_quantile", "latency_index", "pack_hist", "unpack_hist"]

_ALPHA = 0.01
_GAMMA = (1 + _ALPHA) / (1 - _ALPHA)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_MIN_LATENCY = 1e-3
_ZERO_IDX = -(1 << 20)  # sorts before every real index
_MAX_LATENCY = 86_400_000.0


def latency_index(ms: float) -> int:
    """The histogram bucket of a latency in ms."""
    if ms <= _MIN_LATENCY:
        return _ZERO_IDX
    if ms > _MAX_LATENCY:
        ms = _MAX_LATENCY
    return math.ceil(math.log(ms) * _INV_LOG_GAMMA)


def _index_value(idx: int) -> float:
    if idx == _ZERO_IDX:
        return 0.0
    return 2.0 * _GAMMA**idx / (_GAMMA + 1.0)


def hist_quantile(hist: Mapping[int, int], total: int, q: float) -> float | None:
    """The ``q``-quantile of a histogram of ``total`` samples (None when empty)."""
    if total <= 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for idx in sorted(hist):
        seen += hist[idx]
        if seen > rank:
            return _index_value(idx)
    return _index_value(max(hist))  # pragma: no cover - counts always reach total


def pack_hist(hist: Mapping[int, int]) -> list[int]:
    """``[idx0, count0, delta1, count1, ...]`` with sorted, delta-encoded indexes."""
    out: list[int] = []
    prev = 0
    for idx in sorted(hist):
        out.append(idx - prev)
        out.append(hist[idx])
        prev = idx
    return out


def unpack_hist(packed: list[int]) -> dict[int, int]:
    """Reverses :func:`pack_hist`."""
    hist: dict[int, int] = {}
    idx = 0
    for j in range(0, len(packed), 2):
        idx += packed[j]
        hist[idx] = packed[j + 1]
    return hist


class LatencySketch:
    """Mergeable quantile sketch for latencies in ms (log buckets, 1 % relative accuracy).

    Parameters
    ----------
    hist
        Optional initial ``{bucket index: count}``.

    Examples
    --------
    >>> sk = LatencySketch()
    >>> for ms in range(1, 1001):
    ...     sk.update(float(ms))
    >>> sk.n
    1000
    >>> abs(sk.quantile(0.5) - 500) / 500 < 0.011
    True
    >>> abs(sk.quantile(0.95) - 950) / 950 < 0.011
    True
    >>> LatencySketch.from_state(sk.to_state()).quantile(0.95) == sk.quantile(0.95)
    True
    """

    __slots__ = ("hist", "n")

    relative_accuracy = _ALPHA

    def __init__(self, hist: dict[int, int] | None = None) -> None:
        self.hist: dict[int, int] = dict(hist) if hist else {}
        self.n = sum(self.hist.values())

    def update(self, ms: float) -> None:
        idx = latency_index(ms)
        self.hist[idx] = self.hist.get(idx, 0) + 1
        self.n += 1

    def merge(self, other: LatencySketch) -> None:
        for idx, c in other.hist.items():
            self.hist[idx] = self.hist.get(idx, 0) + c
        self.n += other.n

    def quantile(self, q: float) -> float | None:
        return hist_quantile(self.hist, self.n, q)

    def to_state(self) -> list[int]:
        return pack_hist(self.hist)

    @classmethod
    def from_state(cls, state: list[int]) -> LatencySketch:
        return cls(unpack_hist(state))
