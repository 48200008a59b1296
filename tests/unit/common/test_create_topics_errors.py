"""``python -m finops.common.create_topics`` (the image's ``create-topics`` and ``wait-topics``)
ends in one line, never a traceback: a malformed setting as a service does (exit 2), a broker
that does not answer naming ``FINOPS_KAFKA_BOOTSTRAP`` (exit 1). No broker is started: the
connection's errors are injected where aiokafka's ``create_conn`` raises them."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from finops.common import create_topics, topic_admin


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)


def _never_connect(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("connected to Kafka with settings that were refused")


@pytest.mark.parametrize("argv", [[], ["--wait", "5"]], ids=["create-topics", "wait-topics"])
@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "FINOPS_KAFKA_BOOTSTRAP",
            "kafka:abc",
            "error: FINOPS_KAFKA_BOOTSTRAP=kafka:abc: should be a comma-separated list of"
            " HOST:PORT (port 9092 when left out) (abc in kafka:abc is not a port from 1 to 65535)",
        ),
        (
            "FINOPS_KAFKA_REPLICATION_FACTOR",
            "0",
            "error: FINOPS_KAFKA_REPLICATION_FACTOR=0: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_malformed_setting_ends_the_command_with_the_services_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    variable: str,
    value: str,
    line: str,
) -> None:
    # it ended in pydantic's ValidationError traceback, exit status 1
    monkeypatch.setattr(topic_admin, "create_conn", _never_connect)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as ended:
        create_topics.main(argv)
    assert ended.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err.splitlines()) == ("", [line])


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(-2, "Name or service not known"),
        ConnectionRefusedError(111, "Connect call failed ('10.0.0.9', 9092)"),
    ],
    ids=["unresolvable", "refused"],
)
def test_an_unreachable_broker_ends_create_topics_in_one_line_naming_the_bootstrap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: OSError
) -> None:
    # a host name that did not resolve ended in a socket.gaierror traceback
    asked: list[str] = []

    async def create_conn(host: str, port: int, **config: Any) -> Any:
        asked.append(f"{host}:{port}")
        raise error

    monkeypatch.setattr(topic_admin, "create_conn", create_conn)
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "nonexistent.invalid:9092,kafka-1:9092")
    assert create_topics.main([]) == 1
    out, err = capsys.readouterr()
    assert asked == ["nonexistent.invalid:9092", "kafka-1:9092"]  # every server was tried
    assert out == ""
    assert err == (
        "kafka_unreachable: cannot reach Kafka at"
        " FINOPS_KAFKA_BOOTSTRAP=nonexistent.invalid:9092,kafka-1:9092"
        f" ({type(error).__name__}: {error}): check that the brokers run and that"
        " FINOPS_KAFKA_BOOTSTRAP names them\n"
    )


def test_a_broker_that_never_answers_ends_the_wait_naming_the_bootstrap_not_the_topics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # it ended "topics still missing after 0.2 s: <every topic>", the broker never named
    asked: list[str] = []

    async def create_conn(host: str, port: int, **config: Any) -> Any:
        asked.append(f"{host}:{port}")
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(topic_admin, "create_conn", create_conn)
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "kafka-0:9092")
    assert create_topics.main(["--wait", "0.2"]) == 1
    out, err = capsys.readouterr()
    assert len(asked) > 1  # asked again while it waited
    assert out == ""
    assert err == (
        "kafka_unreachable: cannot reach Kafka at FINOPS_KAFKA_BOOTSTRAP=kafka-0:9092"
        " (ConnectionRefusedError: [Errno 111] Connect call failed): check that the brokers"
        " run and that FINOPS_KAFKA_BOOTSTRAP names them\n"
    )
