"""FINOPS_BROKER_OUTAGE_TOLERANCE_S had no upper bound: stage 2 of the breakers does not poll
while it waits for the broker, so a tolerance past the consumer's max.poll.interval (300 s)
would have the group take its partitions away mid-wait. The longest wait (the tolerance, the
acknowledgement wait and twice the request timeout) is refused from 300 s, saying why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finops.healer.settings import HealerSettings


def test_a_tolerance_of_265_s_is_refused_with_the_reason() -> None:
    # 265 + 5 + 2 x 15 = 300 s with the defaults
    with pytest.raises(ValidationError) as refused:
        HealerSettings(broker_outage_tolerance_s=265.0)
    assert "max.poll.interval" in str(refused.value) and "300 s" in str(refused.value)


def test_a_tolerance_just_under_the_poll_interval_is_taken() -> None:
    assert HealerSettings(broker_outage_tolerance_s=264.0).broker_outage_tolerance_s == 264.0


def test_a_long_request_timeout_counts_towards_the_longest_wait() -> None:
    # 240 + 5 + 2 x 60 = 365 s: the tolerance alone passed before
    with pytest.raises(ValidationError) as refused:
        HealerSettings(broker_outage_tolerance_s=240.0, kafka_request_timeout_ms=60_000)
    assert "365 s" in str(refused.value)
    assert HealerSettings(broker_ack_wait_s=5.0, kafka_request_timeout_ms=60_000)
