"""finops.common.gc_pauses: the start-up heap is frozen, collections are timed, the
callback goes with the block."""

from __future__ import annotations

import gc

from finops.common.gc_pauses import GC_PAUSES, gc_pauses_watched


def test_the_block_freezes_the_heap_times_full_collections_and_cleans_up() -> None:
    callbacks = list(gc.callbacks)
    full = GC_PAUSES.labels("unit-test", "2")
    try:
        with gc_pauses_watched("unit-test"):
            assert gc.get_freeze_count() > 0
            before = full._sum.get()
            gc.collect(2)
            assert full._sum.get() > before
        assert gc.callbacks == callbacks
    finally:
        gc.unfreeze()


def test_freeze_can_be_turned_off_to_measure_what_it_saves() -> None:
    gc.unfreeze()
    with gc_pauses_watched("unit-test", freeze=False):
        assert gc.get_freeze_count() == 0
