"""The spend analytics' checkpoint: what :meth:`.SpendAnalytics.to_state` writes and
:meth:`.SpendAnalytics.from_state` reads (pure domain code, no I/O).

This module is the analytics' state half: it reads and sets the state
:class:`~.spend.SpendAnalytics` and its :class:`~.counts.SpendCounts` keep to themselves, and
must change with them. The format is read both ways across versions (a rollback, or an old
replica reading a new worker's partition state during a rolling upgrade; see
``tests/unit/optimizer/test_analytics_checkpoint_compat.py``):

* a key a version does not know is skipped by it, so what a later version added sits beside
  what an earlier one reads (``redelivered``, ``records_taken``, ``unpriced_successes``);
* a restored state that holds windows outside years 1-9999 UTC (checkpointed by an earlier
  version) drops them with a warning.

Examples
--------
>>> from finops.optimizer.domain.analytics import SpendAnalytics
>>> state = SpendAnalytics(retain={"minute": 5}).to_state(remember_ids=False)
>>> state["version"], state["retain"], state["windows"]
(1, {'minute': 5, 'hour': 72, 'day': 60}, {'minute': [], 'hour': [], 'day': []})
>>> SpendAnalytics.from_state(state).summary()["events"]
0
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from finops.common.id_dedupe import IdDedupe
from finops.optimizer.domain.aggregates import (
    pack_bucket,
    pack_unpriced,
    unpack_bucket,
    unpack_unpriced,
)
from finops.optimizer.domain.analytics.counts import SpendCounts
from finops.optimizer.domain.records_taken import RecordsTaken
from finops.optimizer.domain.windows import drop_unrepresentable

if TYPE_CHECKING:
    from finops.optimizer.domain.analytics.spend import SpendAnalytics

__all__ = ["STATE_VERSION", "restore_into", "to_state"]

STATE_VERSION = 1

# the package's logger, as before the analytics became a package
log = logging.getLogger("finops.optimizer.domain.analytics")


def to_state(
    sa: SpendAnalytics, *, remember_ids: bool, resume_at: Mapping[str, int] | None
) -> dict[str, Any]:
    """The JSON-serialisable snapshot of ``sa`` (see :meth:`.SpendAnalytics.to_state`)."""
    counts = sa.counts
    series = counts.series
    return {
        "version": STATE_VERSION,
        "retain": dict(sa.retain),
        "events": sa.events,
        "duplicates": sa.duplicates,
        # both absent before redeliveries were counted apart (a version before skips them)
        "redelivered": sa.redelivered,
        "records_taken": (sa.records_taken if remember_ids else RecordsTaken()).to_state(resume_at),
        "max_ts": counts.max_ts,
        "watermark": {g: s.watermark for g, s in series.items()},
        "late": {g: s.late for g, s in series.items()},
        "out_of_range": counts.out_of_range,
        "totals": pack_bucket(counts.totals),
        "windows": {
            g: [[start, pack_bucket(b)] for start, b in sorted(s.windows.items())]
            for g, s in series.items()
        },
        "dedupe": (sa.dedupe if remember_ids else IdDedupe(sa.dedupe.capacity)).to_state(),
        # beside the packed aggregates, not in them: a version before it unpacks exactly
        # eleven items per aggregate, and skips a key it does not know
        "unpriced_successes": {
            "totals": pack_unpriced(counts.totals),
            "windows": {
                g: [[start, pack_unpriced(b)] for start, b in sorted(s.windows.items())]
                for g, s in series.items()
            },
        },
    }


def restore_into(sa: SpendAnalytics, state: Mapping[str, Any]) -> None:
    """Set ``sa`` (new, with the state's retention and dedupe capacity) to ``state``, a
    :func:`to_state` snapshot of version :data:`STATE_VERSION`, written by this code or an
    earlier one."""
    sa.events = state["events"]
    sa.duplicates = state["duplicates"]
    # a state written before redeliveries were counted apart has them among duplicates
    sa.redelivered = state.get("redelivered", 0)
    # a state of commit 2c67f41 to e87b306 kept the newest offset taken per partition
    # ("positions") instead, which cannot tell a replaced log's records: not used
    sa.records_taken = RecordsTaken.from_state(state.get("records_taken"))
    _restore_counts(sa.counts, state)
    sa.dedupe = IdDedupe.from_state(state["dedupe"])


def _restore_counts(counts: SpendCounts, state: Mapping[str, Any]) -> None:
    counts.max_ts = state["max_ts"]
    for g, watermark in state["watermark"].items():
        counts.series[g].watermark = watermark
    for g, late in state["late"].items():
        counts.series[g].late = late
    counts.out_of_range = state.get("out_of_range", 0)
    counts.totals = unpack_bucket(state["totals"])
    for g, wins in state["windows"].items():
        target = counts.series[g].windows
        for s, b in wins:
            target[int(s)] = unpack_bucket(b)
    _restore_unpriced_successes(counts, state.get("unpriced_successes"))
    _drop_unrepresentable_windows(counts)


def _restore_unpriced_successes(counts: SpendCounts, packed: Mapping[str, Any] | None) -> None:
    """The successes among the unpriced calls, from :func:`to_state`'s part; without it (a
    state written by a version before it) every restored unpriced call's outcome is
    unknown (:attr:`~..aggregates.Aggregate.unsplit`): its success, if it was one, stays
    among the priced successes, as that version counted it; except in a state of commit
    dc7d1d8 (reverted), whose aggregates packed them as a twelfth item
    (:meth:`~..aggregates.Aggregate.unpack`)."""
    if packed is None:
        return
    unpack_unpriced(counts.totals, packed["totals"])
    for g, series in counts.series.items():
        parts = {int(s): b for s, b in packed["windows"].get(g, [])}
        for s, bucket in series.windows.items():
            unpack_unpriced(bucket, parts.get(s, [{} for _ in bucket]))


def _drop_unrepresentable_windows(counts: SpendCounts) -> None:
    """Forget windows outside years 1-9999 UTC, which an earlier version could
    checkpoint, and the watermarks they moved; the totals keep their events."""
    windows = {g: s.windows for g, s in counts.series.items()}
    watermark = {g: s.watermark for g, s in counts.series.items()}
    dropped, counts.max_ts = drop_unrepresentable(windows, watermark, counts.max_ts)
    for g, wm in watermark.items():
        counts.series[g].watermark = wm
    if dropped:
        log.warning(
            "dropped %d windows outside the representable time range (years 1-9999 UTC) "
            "from the restored analytics state; the all-time totals keep their events",
            dropped,
            extra={"dropped_windows": dropped},
        )
