"""Every service refuses a malformed broker address, Redis URL or port when it reads its
settings, naming the variable, before any client library fails on it deep in a connection."""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from finops.cli.stack.settings import StackSettings
from finops.common.settings import CommonSettings
from finops.optimizer.settings import OptimizerSettings


@pytest.mark.parametrize(
    "value",
    [
        "kafka-0:9092",
        "kafka-0:9092, kafka-1:9093",
        "[::1]:9092",
        "127.0.0.1:1",
        # aiokafka's collect_hosts connects to a host without a port on 9092
        "kafka",
        "kafka-0,kafka-1:9093",
        "[::1]",
    ],
)
def test_a_list_of_host_port_is_a_bootstrap(monkeypatch, value):
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", value)
    assert CommonSettings().kafka_bootstrap == value
    assert StackSettings().kafka_bootstrap == value


@pytest.mark.parametrize(
    "value",
    [
        "localhost:abc",
        ":::",
        # bare IPv6: ::1:9092 would be read as an address; Faust's kafka://::1 is no URL
        "::1",
        "::1:9092",
        "kafka:abc",
        "kafka:0",
        "kafka:65536",
        "a:1,,b:2",
        ":9092",
        "kafka:",
        "[::1]:",
        "PLAINTEXT://kafka:9092",
        "kafka://kafka",
    ],
)
def test_a_bootstrap_that_is_not_host_port_is_refused(monkeypatch, value):
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", value)
    for settings in (CommonSettings, OptimizerSettings, StackSettings):
        with pytest.raises(ValidationError, match="comma-separated list of HOST:PORT"):
            settings()


def test_a_bootstrap_with_a_scheme_is_told_to_drop_it(monkeypatch):
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "PLAINTEXT://kafka:9092")
    with pytest.raises(ValidationError) as refused:
        CommonSettings()
    assert "PLAINTEXT://kafka:9092 is not HOST:PORT — no scheme: kafka:9092" in str(refused.value)
    assert "brackets" not in str(refused.value)


@pytest.mark.parametrize(
    "value", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380/1", "unix:///run/redis.sock"]
)
def test_a_redis_url_is_accepted(monkeypatch, value):
    monkeypatch.setenv("FINOPS_REDIS_URL", value)
    assert CommonSettings().redis_url == value
    assert StackSettings().redis_url == value


@pytest.mark.parametrize(
    "value",
    [
        "notaurl",
        "http://cache:6379/0",
        "redis://cache:port/0",
        "redis://cache:70000/0",
        "redis:///0",  # no host: redis-py would connect to localhost
    ],
)
def test_a_url_redis_cannot_use_is_refused(monkeypatch, value):
    monkeypatch.setenv("FINOPS_REDIS_URL", value)
    for settings in (CommonSettings, OptimizerSettings, StackSettings):
        with pytest.raises(ValidationError, match="should be a URL of the form redis://"):
            settings()


@pytest.mark.parametrize(
    "value",
    [
        "redis://:p#w@cache:6379/0",
        "redis://:p?w@cache:6379/0",
        "redis://u:a/b@cache/0",
        # cut before any port: redis-py would read no host and connect to localhost
        "redis://:#secret@cache:6379/0",
        "redis://:8080#x@cache:6379/0",
    ],
)
def test_an_unencoded_password_is_named_not_the_port(monkeypatch, value):
    monkeypatch.setenv("FINOPS_REDIS_URL", value)
    for settings in (CommonSettings, StackSettings):
        with pytest.raises(ValidationError) as refused:
            settings()
        assert "percent-encode it" in str(refused.value)
        assert "the port" not in str(refused.value)


def test_an_encoded_password_is_a_redis_url(monkeypatch):
    monkeypatch.setenv("FINOPS_REDIS_URL", "redis://:p%23w@cache:6379/0")
    assert CommonSettings().redis_url == "redis://:p%23w@cache:6379/0"


def _settings_classes() -> list[type[CommonSettings]]:
    """CommonSettings and every service's settings class (each one's module imported)."""
    for service in ("auth", "ingest", "optimizer", "healer", "experiments"):
        importlib.import_module(f"finops.{service}.settings")
    classes, todo = [], [CommonSettings]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return classes


def test_every_service_settings_class_refuses_a_port_out_of_range(monkeypatch):
    classes = _settings_classes()
    names = {cls.__name__ for cls in classes}
    assert {"AuthSettings", "IngestSettings", "OptimizerSettings", "HealerSettings"} <= names
    monkeypatch.setenv("FINOPS_PORT", "70000")
    for cls in classes:
        with pytest.raises(ValidationError, match="port"):
            cls()


def test_a_port_field_declared_without_the_range_keeps_it(monkeypatch):
    class Careless(CommonSettings):
        port: int = 8009  # no Port: CommonSettings' validator still holds

    monkeypatch.setenv("FINOPS_PORT", "70000")
    with pytest.raises(ValidationError, match="should be a port from 1 to 65535"):
        Careless()
    monkeypatch.setenv("FINOPS_PORT", "8010")
    assert Careless().port == 8010


@pytest.mark.parametrize("value", ["0", "65536", "70000"])
def test_a_port_out_of_range_is_refused(monkeypatch, value):
    monkeypatch.setenv("FINOPS_PORT", value)
    with pytest.raises(ValidationError, match="port"):
        CommonSettings()
    with pytest.raises(ValidationError, match="port"):
        OptimizerSettings()  # a service's own default port keeps the range
    monkeypatch.delenv("FINOPS_PORT")
    for component in ("postgres", "redis", "kafka", "auth", "storage"):
        monkeypatch.setenv(f"FINOPS_{component.upper()}_PORT", value)
        with pytest.raises(ValidationError, match=f"{component}_port"):
            StackSettings()
        monkeypatch.delenv(f"FINOPS_{component.upper()}_PORT")


def test_a_refused_value_is_not_repeated_in_the_error_a_service_logs(monkeypatch):
    # a Redis URL may hold a password: the service prints the validation error in its log
    monkeypatch.setenv("FINOPS_REDIS_URL", "redis://:hunter2@cache:99999/0")
    for settings in (CommonSettings, OptimizerSettings):
        with pytest.raises(ValidationError) as refused:
            settings()
        assert "FINOPS_REDIS_URL" in str(refused.value) or "redis_url" in str(refused.value)
        assert "hunter2" not in str(refused.value)


def test_the_stack_settings_do_not_repeat_a_refused_value(monkeypatch):
    # the CLI's stack settings read the same URLs: a raw validation error (a traceback, a
    # log) must not show a password either, nor the one-line error the `finops` command prints
    from typer.testing import CliRunner

    from finops.cli.main import app

    url = "redis://:hunter2@cache:99999/0"
    monkeypatch.setenv("FINOPS_REDIS_URL", url)
    with pytest.raises(ValidationError) as refused:
        StackSettings()
    assert "redis_url" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert url not in str(refused.value)

    result = CliRunner().invoke(app, ["topics"], prog_name="finops")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: FINOPS_REDIS_URL: ")
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        ("[::1]:9092", ["[::1]:9092"]),
        ("[::1]", ["[::1]:9092"]),
        ("kafka-0:9092, kafka-1:9093", ["kafka-0:9092", "kafka-1:9093"]),
    ],
)
def test_faust_reaches_the_bootstrap_it_was_given(monkeypatch, value, servers):
    # What the healer's and experiments' Faust apps hand aiokafka: a bracketed IPv6 address
    # keeps its brackets (yarl strips them from the kafka:// URL, Faust puts them back).
    from faust.transport.drivers.aiokafka import server_list

    from finops.common.streams import StreamSettings, make_faust_app

    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", value)
    app = make_faust_app(StreamSettings(faust_app_id="finops-test"))
    assert server_list(app.conf.broker, 9092) == servers


@pytest.mark.parametrize("value", ["notaurl", "auth:8001", "http://", "https://auth:abc"])
def test_a_service_url_without_scheme_or_host_is_refused_by_the_services_and_the_cli(
    monkeypatch, value
):
    monkeypatch.setenv("FINOPS_AUTH_URL", value)
    for settings in (CommonSettings, OptimizerSettings, StackSettings):
        with pytest.raises(ValidationError, match=r"http://HOST\[:PORT\]"):
            settings()


@pytest.mark.parametrize("value", ["http://auth:8001", "https://auth.example.com"])
def test_an_http_url_with_a_host_is_a_service_url(monkeypatch, value):
    monkeypatch.setenv("FINOPS_AUTH_URL", value)
    assert CommonSettings().auth_url == value
    assert StackSettings().service_url("auth") == value
