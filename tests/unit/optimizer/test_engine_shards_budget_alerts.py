"""The ids of the fleet's budget alerts raised live in partition 0's checkpoint: its next owner
restores them (issue 14's known limit: they were in memory and raised again after a move);
an alert raised in the period is not raised again after a new limit or the upgrade, but one a
new limit put out of reach is, once the spend crosses it again (as one worker does)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from test_engine_shards_settings import shards

from finops.common.checkpoints import Checkpoint
from finops.common.id_dedupe import IdDedupe, fingerprint
from finops.optimizer.adapters.engine_shards import BUDGET_ALERTS_PART, BUDGET_ALERTS_PARTITION
from finops.optimizer.adapters.shard_snapshots import PartitionedLearning
from finops.optimizer.domain.budget_alerts import label_id
from finops.optimizer.domain.budgets import Budget, BudgetTracker
from finops.optimizer.domain.engine import OptimizerEngine


async def test_the_next_owner_of_partition_0_restores_the_budget_alert_ids_raised():
    rows: dict[str, Checkpoint] = {}
    first = shards(rows)
    engine, _, _ = await first.load_shard(BUDGET_ALERTS_PARTITION)
    first.budget_alerts_raised.add(11)
    first.budget_alerts_raised.add(22)
    assert await first.save_shard(BUDGET_ALERTS_PARTITION, engine, {})

    second = shards(rows)
    await second.load_shard(BUDGET_ALERTS_PARTITION)
    assert (11 in second.budget_alerts_raised, 22 in second.budget_alerts_raised) == (True, True)
    assert 33 not in second.budget_alerts_raised
    assert len(second.budget_alerts_raised) == 2


async def test_only_partition_0_checkpoints_the_ids_and_loading_another_keeps_them():
    rows: dict[str, Checkpoint] = {}
    owner = shards(rows)
    zero, _, _ = await owner.load_shard(BUDGET_ALERTS_PARTITION)
    owner.budget_alerts_raised.add(11)
    three, _, _ = await owner.load_shard(3)
    assert await owner.save_shard(3, three, {})
    assert await owner.save_shard(BUDGET_ALERTS_PARTITION, zero, {})
    assert BUDGET_ALERTS_PART not in rows["optimizer:p3"].state_dict()
    assert BUDGET_ALERTS_PART in rows["optimizer:p0"].state_dict()
    assert 11 in owner.budget_alerts_raised


async def test_a_checkpoint_from_before_the_ids_were_kept_starts_with_none_raised():
    rows = {"optimizer:p0": Checkpoint(OptimizerEngine().to_state(), {"learning:0": 5})}
    owner = shards(rows)
    owner.budget_alerts_raised.add(11)  # left from an earlier ownership
    _, offsets, _ = await owner.load_shard(BUDGET_ALERTS_PARTITION)
    assert offsets == {"learning:0": 5}
    assert len(owner.budget_alerts_raised) == 0


class SentAlerts:
    """A producer that acknowledges every alert at once and keeps them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append(json.loads(value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def raise_due(
    learning: Any, tracker: BudgetTracker, raised: IdDedupe
) -> list[tuple[str, float]]:
    """One view's turn of the partitioned alerts: (type, threshold) of the alerts raised."""
    before = len(learning.producer.sent)
    view = SimpleNamespace(budgets=tracker)
    PartitionedLearning._rearm_quiet(view, raised)  # type: ignore[arg-type]
    queued_alerts = await PartitionedLearning._queue_unraised(learning, view, raised)  # type: ignore[arg-type]
    for queued in queued_alerts:
        await queued.ack
        raised.add(queued.key)
        raised.add(queued.label_key)
    return [
        (a["details"]["alert_type"], a["details"]["threshold"])
        for a in learning.producer.sent[before:]
    ]


def nine_of_ten_spent() -> tuple[Any, BudgetTracker, IdDedupe]:
    """The partitioned alerts' turn (as :func:`raise_due` takes it), a $10 day budget $9 into
    its day, and the ids raised (none yet)."""
    learning = SimpleNamespace(producer=SentAlerts(), alerts_topic="alerts")
    tracker, raised = BudgetTracker([Budget("b1", "agent", "bot", "day", 10.0)]), IdDedupe(64)
    for hour in range(9):
        tracker.observe_cost("agent", "bot", datetime(2025, 3, 1, hour, tzinfo=UTC), 1.0)
    return learning, tracker, raised


async def test_a_new_limit_raises_again_no_alert_raised_in_the_period_when_partitioned():
    # With the limit in the ids, every alert still due after a limit change had a new id:
    # the partitioned view, which polls due alerts, raised all of them a second time.
    learning, tracker, raised = nine_of_ten_spent()
    first = await raise_due(learning, tracker, raised)
    assert ("threshold", 0.8) in first
    tracker.set_budget(Budget("b1", "agent", "bot", "day", 10.5))
    assert await raise_due(learning, tracker, raised) == []


async def test_alerts_raised_under_ids_without_the_limit_are_not_raised_again():
    # partition 0's checkpoint of the version before holds ids without the limit
    learning, tracker, raised = nine_of_ten_spent()
    for alert in tracker.due_alerts():
        raised.add(fingerprint(uuid.UUID(label_id(alert))))
    assert await raise_due(learning, tracker, raised) == []


async def test_a_threshold_a_new_limit_put_out_of_reach_is_raised_again_once_crossed():
    # it was not: the threshold's label raised under the old limit kept it raised all period
    learning, tracker, raised = nine_of_ten_spent()
    assert ("threshold", 0.8) in await raise_due(learning, tracker, raised)
    tracker.set_budget(Budget("b1", "agent", "bot", "day", 20.0))  # 80 % is now $16
    assert ("threshold", 0.8) not in await raise_due(learning, tracker, raised)
    for hour in range(9, 16):  # $16 of $20
        tracker.observe_cost("agent", "bot", datetime(2025, 3, 1, hour, tzinfo=UTC), 1.0)
    again = [a for a in learning.producer.sent if a["details"]["threshold"] == 0.8]
    assert await raise_due(learning, tracker, raised) == [("threshold", 0.8)]
    raised_again = learning.producer.sent[-1]
    assert (raised_again["details"]["limit_usd"], raised_again["details"]["spend_usd"]) == (
        20.0,
        16.0,
    )
    assert raised_again["alert_id"] != again[0]["alert_id"]
    # and once only
    assert await raise_due(learning, tracker, raised) == []


async def test_a_threshold_still_crossed_under_a_new_limit_is_not_raised_again_when_partitioned():
    learning, tracker, raised = nine_of_ten_spent()
    assert ("threshold", 0.8) in await raise_due(learning, tracker, raised)
    tracker.set_budget(Budget("b1", "agent", "bot", "day", 11.0))  # $9 is still over $8.80
    for hour in range(9, 10):
        tracker.observe_cost("agent", "bot", datetime(2025, 3, 1, hour, tzinfo=UTC), 1.0)
    assert ("threshold", 0.8) not in await raise_due(learning, tracker, raised)


async def test_a_forecast_raised_before_the_upgrade_is_not_raised_again_in_its_period():
    # it was, once it had fallen back and risen again: the view rearmed it like one raised
    # under a limit's id, which the version before never did within a period
    learning = SimpleNamespace(producer=SentAlerts(), alerts_topic="alerts")
    tracker, raised = BudgetTracker([Budget("b1", "agent", "bot", "day", 100.0)]), IdDedupe(64)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for minute in range(0, 120, 10):  # a fast burn: $24 in two hours, forecast over $100
        tracker.observe_cost("agent", "bot", start + timedelta(minutes=minute), 2.0)
    assert [a.details["alert_type"] for a in tracker.due_alerts()] == ["forecast_exceeds"]
    for alert in tracker.due_alerts():  # raised by the version before: under its label id
        raised.add(fingerprint(uuid.UUID(label_id(alert))))
    assert await raise_due(learning, tracker, raised) == []
    for hour in range(3, 14):  # hours of almost nothing: the forecast falls back
        tracker.observe_cost("agent", "bot", start + timedelta(hours=hour), 0.01)
    assert tracker.due_alerts() == []
    assert await raise_due(learning, tracker, raised) == []
    for minute in range(0, 120, 5):  # a burst: over the limit's forecast again
        tracker.observe_cost("agent", "bot", start + timedelta(hours=14, minutes=minute), 3.0)
    assert "forecast_exceeds" in [a.details["alert_type"] for a in tracker.due_alerts()]
    assert ("forecast_exceeds", 1.0) not in await raise_due(learning, tracker, raised)
