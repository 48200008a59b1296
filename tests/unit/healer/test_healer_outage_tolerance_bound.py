"""FINOPS_BROKER_OUTAGE_TOLERANCE_S had no upper bound: stage 2 of the breakers does not poll
while it waits for the broker, so a tolerance past the consumer's max.poll.interval (300 s)
would have the group take its partitions away mid-wait. It is refused above 240 s, saying why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finops.healer.settings import HealerSettings


def test_a_tolerance_above_240_s_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError) as refused:
        HealerSettings(broker_outage_tolerance_s=241.0)
    assert "max.poll.interval" in str(refused.value)


def test_a_tolerance_of_240_s_is_taken() -> None:
    assert HealerSettings(broker_outage_tolerance_s=240.0).broker_outage_tolerance_s == 240.0
