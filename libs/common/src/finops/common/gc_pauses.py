"""Garbage-collector pauses: keep the start-up heap out of full collections, and time them.

A stream service holds its modules, its Faust app, its clients and its restored state for as
long as it runs. Left in the oldest generation, every full collection walks them all with the
event loop stopped: tens of milliseconds on a quiet machine, hundreds on a loaded one, and
every request that arrives meanwhile waits (the p99 of the experiments' assignment API and of
the healer's advice API were such stalls). :func:`gc_pauses_watched` freezes what start-up
allocated out of the collector's sight, then records each collection's pause.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

from prometheus_client import Histogram

GC_PAUSES = Histogram(
    "finops_gc_pause_seconds",
    "Seconds each garbage collection paused the process's event loop, by service and generation",
    ["service", "generation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)


def freeze_startup_heap() -> None:
    """Move everything allocated so far out of the garbage collector's sight.

    Frozen objects are never collected, so this runs once the long-lived objects exist and
    after a collection has freed the start-up garbage.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def gc_pauses_watched(service: str, *, freeze: bool = True) -> Iterator[None]:
    """For the ``with`` block: the start-up heap frozen (unless ``freeze`` is false, to
    measure what it saves) and every collection's pause observed on :data:`GC_PAUSES`.

    Examples
    --------
    >>> with gc_pauses_watched("doctest", freeze=False):
    ...     _ = gc.collect(0)
    >>> GC_PAUSES.labels("doctest", "0")._sum.get() > 0
    True
    """
    if freeze:
        freeze_startup_heap()
    started = 0.0

    def observe(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            GC_PAUSES.labels(service, str(info["generation"])).observe(
                time.perf_counter() - started
            )

    gc.callbacks.append(observe)
    try:
        yield
    finally:
        gc.callbacks.remove(observe)
