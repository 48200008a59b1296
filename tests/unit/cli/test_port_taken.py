"""`finops up` refusing a taken port says how to stop a stack that holds it, including one
started with another FINOPS_DATA_DIR, which `finops status` and `finops down` do not see."""

from __future__ import annotations

import socket

import pytest

from finops.cli.stack.local_stack import Stack, StackError, StackSettings


def test_a_taken_port_names_it_and_how_to_stop_a_stack_of_another_data_dir(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        stack = Stack(StackSettings(data_dir=tmp_path, redis_port=port), infra_only=True)
        with pytest.raises(StackError) as refused:
            stack.check_ports()
    message = str(refused.value)
    assert f"port {port} (redis) is already in use on 127.0.0.1" in message
    assert (
        "a stack started with another FINOPS_DATA_DIR stops with"
        " `FINOPS_DATA_DIR=<its folder> finops down`"
    ) in message
