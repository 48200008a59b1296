"""A port the stack drew itself (the broker's private one, the optimizer workers after the
first) that another program binds between the draw and the component's own bind: the
component is started again on a port drawn anew, and says so (the other program's listener
accepts connections and answers no Kafka request: the broker is never taken to be ready
there, however slowly it gets to its bind and exits); a port a setting names is never
changed (tests/unit/cli/test_port_taken.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from support import llm_call, publish

from finops.cli.stack.local_stack import Stack
from finops.cli.stack.ports import free_port
from finops.cli.stack.settings import StackSettings
from finops.common.kafka import read_topic
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST

pytestmark = pytest.mark.integration


def _taken_just_before(prepare: Callable[[], None] | None, port: int, held: list[socket.socket]):
    """``prepare``, after a server of somebody else's has bound ``port`` (the race: the port
    was free when drawn, and taken when the component came to listen on it)."""

    def squat_then_prepare() -> None:
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        held.append(squatter)
        if prepare:
            prepare()

    return squat_then_prepare


def test_a_broker_whose_drawn_port_was_taken_before_it_bound_starts_on_another(
    infra, tmp_path: Path
) -> None:
    settings = StackSettings(
        data_dir=tmp_path,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        kafka_port=free_port(),
        kafka_storage="memory",
    )
    said: list[str] = []
    stack = Stack(settings, infra_only=True, echo=said.append)
    broker = stack.components["broker"]
    taken = broker.port
    held: list[socket.socket] = []
    broker.prepare = _taken_just_before(broker.prepare, taken, held)
    try:
        stack.start()
        try:
            moved = stack.components["broker"].port
            assert moved != taken
            assert stack.infra.broker_port == moved
            assert (
                f"broker: port {taken} was taken before it could listen on it;"
                f" starting it on port {moved}"
            ) in said
            # the gate forwards to the broker on its new port: a record goes there and back
            common = CommonSettings(
                kafka_bootstrap=stack.kafka_bootstrap, kafka_enable_idempotence=False
            )
            assert asyncio.run(_send_and_read_back(common)) == 1
        finally:
            stack.stop()
    finally:
        for squatter in held:
            squatter.close()


def test_a_broker_whose_drawn_port_is_taken_before_the_start_is_never_started_on_it(
    infra, tmp_path: Path
) -> None:
    """Taken between the draw and the start: the port is drawn anew before the broker starts
    (started on the taken port, its probe reached the other program's listener)."""
    settings = StackSettings(
        data_dir=tmp_path,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        kafka_port=free_port(),
        kafka_storage="memory",
    )
    said: list[str] = []
    stack = Stack(settings, infra_only=True, echo=said.append)
    taken = stack.components["broker"].port
    held: list[socket.socket] = []
    _taken_just_before(None, taken, held)()
    try:
        stack.start()
        try:
            moved = stack.components["broker"]
            assert moved.port != taken
            assert said[0] == (
                f"broker: port {taken} was taken before it could listen on it;"
                f" starting it on port {moved.port}"
            )
            assert moved.found_its_port_taken() is False
            assert moved.log_offset == 0  # its only start: on the port drawn anew
        finally:
            stack.stop()
    finally:
        for squatter in held:
            squatter.close()


async def _send_and_read_back(common: CommonSettings) -> int:
    """Send one record through the stack's gate and count the topic's records read back."""
    await publish(common, AGENT_COST.name, [llm_call("moved-broker")])
    return len([r async for r in read_topic(common, AGENT_COST.name, idle_s=0.0)])


def test_a_broker_port_a_setting_names_is_not_changed_when_taken(infra, tmp_path: Path) -> None:
    port = free_port()
    settings = StackSettings(
        data_dir=tmp_path,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        kafka_port=free_port(),
        broker_port=port,
        kafka_storage="memory",
        ready_timeout_s=60,
    )
    said: list[str] = []
    stack = Stack(settings, infra_only=True, echo=said.append)
    broker = stack.components["broker"]
    held: list[socket.socket] = []
    broker.prepare = _taken_just_before(broker.prepare, port, held)
    try:
        with pytest.raises(Exception, match=r"broker exited during start-up") as failed:
            stack.start()
    finally:
        for squatter in held:
            squatter.close()
    assert stack.components["broker"].port == port
    assert not any("was taken" in line for line in said)
    assert failed.type.__name__ == "StackError"
