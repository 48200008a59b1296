"""A reader is caught up once it has read every partition up to its end at a moment (the
optimizer's view at its start: issue 14's known limit was an answer from an empty view; the
healer's breakers when they adopt an upgraded partition)."""

from __future__ import annotations

from finops.common.catch_up import CatchUp


def test_a_partition_is_behind_until_its_position_reaches_its_end_at_the_start():
    catch_up = CatchUp({0: 4, 1: 2})
    catch_up.positions.update({0: 3, 1: 2})
    assert catch_up.behind() == [0]
    catch_up.positions[0] = 4
    assert catch_up.behind() == []


def test_records_published_after_the_start_do_not_hold_readiness_back():
    catch_up = CatchUp({0: 4})
    catch_up.positions[0] = 9  # read past the end it saw at the start
    assert catch_up.behind() == []


def test_an_empty_partition_is_read_once_its_position_is_known():
    catch_up = CatchUp({0: 0, 1: 7})  # 1: compacted, its records start at 7, end there
    assert catch_up.behind() == [0, 1]
    catch_up.positions.update({0: 0, 1: 7})
    assert catch_up.behind() == []


def test_a_log_without_partitions_has_nothing_to_wait_for():
    assert CatchUp({}).behind() == []
