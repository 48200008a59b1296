"""Rates read off observed progress: how fast work advanced between readings of it, refused
when it was seen to advance too few times to be a rate."""

from __future__ import annotations

import time
from dataclasses import dataclass

#: the fewest steps of progress a rate is read over (see :class:`Progress`)
MIN_SAMPLES = 2


class TooFewSamples(RuntimeError):
    """The work was seen to advance too few times for its pace to be a rate."""


@dataclass(frozen=True)
class Rate:
    """Events per second, and how many steps of progress they were read over."""

    per_s: float
    samples: int


class Progress:
    """Readings of how much work is done (a counter, records read), each with its time: the
    rate from the first reading to the last, over the work done after the first.

    A service applies a whole batch before its counter can be read again, and a consumer gets
    its records a batch at a time: when the first reading already holds nearly all the work,
    the rest is no rate (a counter seen at 0 and then at 2,000 gave 0 events/s; 2,000 records
    fetched at once were "read" at 5 million a second). So :meth:`rate` refuses one read over
    fewer than :data:`MIN_SAMPLES` readings that saw the work advance after the first.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        #: readings after the first that saw the work advance
        self.samples = 0

    def saw(self, done: float, at: float | None = None) -> None:
        """A reading: ``done`` so far, at ``at`` (``time.perf_counter()``, now by default)."""
        reading = (time.perf_counter() if at is None else at, done)
        if self.first is None:
            self.first = reading
        elif self.last is not None and done > self.last[1]:
            self.samples += 1
        self.last = reading

    def rate(self) -> Rate:
        if self.first is None or self.last is None or self.samples < MIN_SAMPLES:
            first = self.first[1] if self.first else 0
            last = self.last[1] if self.last else 0
            raise TooFewSamples(
                f"{self.what}: from {first:,.0f} at its first reading to {last:,.0f}, seen to "
                f"advance {self.samples} time(s) after it; a rate needs {MIN_SAMPLES}: "
                "give the run more events (--events)"
            )
        (t0, done0), (t1, done1) = self.first, self.last
        return Rate((done1 - done0) / (t1 - t0), self.samples)
