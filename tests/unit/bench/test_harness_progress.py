"""The bench's rates read off observed progress (bench/_rates.py's Progress): a rate needs the
work seen to advance at least twice after the first reading."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from _rates import MIN_SAMPLES, Progress, Rate, TooFewSamples  # noqa: E402


def test_a_rate_is_the_work_after_the_first_reading_over_the_time_since():
    progress = Progress("a counter")
    for at, done in [(10.0, 2000), (10.5, 2000), (11.0, 6000), (11.5, 6000), (12.0, 10000)]:
        progress.saw(done, at)
    assert progress.rate() == Rate(4000.0, 2)


def test_the_last_reading_dates_the_end_even_when_it_saw_no_more():
    progress = Progress("error events")
    for at, done in [(0.0, 100), (1.0, 600), (2.0, 1100), (3.0, 1100)]:
        progress.saw(done, at)
    assert progress.rate() == Rate(1000 / 3, 2)


@pytest.mark.parametrize(
    "readings",
    [
        [(1.0, 2000), (1.2, 2000), (1.4, 2000)],  # the whole run was one batch: "0 events/s"
        [(1.0, 2000), (1.001, 4000)],  # one step: two batches of a fetch, "millions a second"
        [],
    ],
)
def test_fewer_steps_than_needed_give_no_rate(readings):
    progress = Progress("finops_optimizer_events_total")
    for at, done in readings:
        progress.saw(done, at)
    assert progress.samples < MIN_SAMPLES
    needs_more = r"finops_optimizer_events_total: .* more events \(--events\)"
    with pytest.raises(TooFewSamples, match=needs_more):
        progress.rate()
