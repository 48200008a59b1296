"""A malformed broker address, Redis URL or port is one ``error:`` line, as a malformed
FINOPS_DATABASE_URL is: never the traceback of the client library that failed to parse it
(``ValueError: invalid literal for int()``, ``OverflowError: connect(): port must be
0-65535``). The values are checked where the settings are defined, so the services refuse
them too (tests/unit/common/test_address_settings.py).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finops.cli.main import app

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
BOOTSTRAP = "should be a comma-separated list of HOST:PORT (port 9092 when left out)"
REDIS = (
    "FINOPS_REDIS_URL: should be a URL of the form redis://[:PASSWORD@]HOST:PORT/DB"
    " (or rediss://, unix://)"
)


def invoke(*args: str, env: dict[str, str]):
    return CliRunner().invoke(app, list(args), env={**PLAIN, **env}, prog_name="finops")


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "FINOPS_KAFKA_BOOTSTRAP",
            "localhost:abc",
            f"FINOPS_KAFKA_BOOTSTRAP=localhost:abc: {BOOTSTRAP}"
            " (abc in localhost:abc is not a port from 1 to 65535)",
        ),
        (
            "FINOPS_KAFKA_BOOTSTRAP",
            ":::",
            f"FINOPS_KAFKA_BOOTSTRAP=:::: {BOOTSTRAP} (::: is not HOST:PORT — an IPv6 address"
            " goes in brackets: [::1]:9092)",
        ),
        (
            "FINOPS_KAFKA_PORT",
            "70000",
            "FINOPS_KAFKA_PORT=70000: Input should be less than or equal to 65535",
        ),
        (
            "FINOPS_POSTGRES_PORT",
            "70000",
            "FINOPS_POSTGRES_PORT=70000: Input should be less than or equal to 65535",
        ),
        (
            "FINOPS_REDIS_PORT",
            "0",
            "FINOPS_REDIS_PORT=0: Input should be greater than or equal to 1",
        ),
        # the value is left out: a URL may hold a password
        ("FINOPS_REDIS_URL", "notaurl", f"{REDIS} (no redis://, rediss:// or unix:// scheme)"),
        (
            "FINOPS_REDIS_URL",
            "redis://:hunter2@cache:99999/0",
            f"{REDIS} (the port is not a number from 1 to 65535)",
        ),
        (
            "FINOPS_REDIS_URL",
            "redis://:p#w@cache:6379/0",
            f"{REDIS} (the password holds a character a URL reserves (# ? /): percent-encode it"
            " (# is %23))",
        ),
        (
            "FINOPS_KAFKA_BOOTSTRAP",
            "PLAINTEXT://kafka:9092",
            f"FINOPS_KAFKA_BOOTSTRAP=PLAINTEXT://kafka:9092: {BOOTSTRAP}"
            " (PLAINTEXT://kafka:9092 is not HOST:PORT — no scheme: kafka:9092)",
        ),
    ],
    ids=[
        "bootstrap-port",
        "bootstrap-colons",
        "kafka-port",
        "postgres-port",
        "redis-port",
        "redis-scheme",
        "redis-url-port",
        "redis-url-password",
        "bootstrap-scheme",
    ],
)
@pytest.mark.parametrize(
    "args",
    [("topics",), ("reprice",), ("tail", "agent.cost.v1"), ("users", "deactivate", "nosuch")],
    ids=["topics", "reprice", "tail", "users-deactivate"],
)
def test_a_malformed_address_setting_is_one_line(args, variable, value, line):
    result = invoke(*args, env={variable: value})
    # a malformed setting exits 2, as a bad option or file does (docs/cli.md)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {line}\n"


SERVICE_URL = "should be a URL of the form http://HOST[:PORT] (or https://)"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("FINOPS_OPTIMIZER_URL", "notaurl", "no http:// or https:// scheme"),
        ("FINOPS_INGEST_URL", "127.0.0.1:8002", "no http:// or https:// scheme"),
        ("FINOPS_AUTH_URL", "http://", "no host"),
        ("FINOPS_HEALER_URL", "http://healer:abc", "the port is not a number from 1 to 65535"),
        ("FINOPS_EXPERIMENTS_URL", "ftp://experiments", "no http:// or https:// scheme"),
    ],
)
@pytest.mark.parametrize(
    "args", [("simulate", "--calls", "100"), ("report",)], ids=["simulate", "report"]
)
def test_a_malformed_service_url_is_a_bad_setting_not_an_unreachable_stack(
    args, variable, value, problem
):
    # it used to be reported as a stack that does not answer, exit 1: `error: cannot reach
    # /notaurl/healthz — start the stack with `finops up --detach``
    result = invoke(*args, env={variable: value})
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {variable}: {SERVICE_URL} ({problem})\n"


def test_a_list_setting_that_is_not_json_is_one_line_naming_it(monkeypatch):
    # pydantic-settings reads a list field as JSON and raises its SettingsError, not a
    # ValidationError, on anything else
    from finops.cli.failures import explain
    from finops.healer.settings import HealerSettings

    monkeypatch.setenv("FINOPS_FALLBACK_MODELS", "gpt-4o,claude")
    with pytest.raises(Exception) as raised:
        HealerSettings()
    failure = explain(raised.value)
    assert failure is not None
    assert (failure.code, failure.message) == (
        2,
        "FINOPS_FALLBACK_MODELS=gpt-4o,claude: "
        'should be JSON (a list such as ["a", "b"], or an object)',
    )


def test_an_empty_service_url_is_not_set(monkeypatch):
    # `FINOPS_OPTIMIZER_URL=` from a CI job or an .env file stopped every command, `finops
    # down` (and so `make clean`) too, as a malformed URL
    from finops.cli.stack.settings import StackSettings

    monkeypatch.setenv("FINOPS_OPTIMIZER_URL", "")
    empty = StackSettings()
    assert empty.optimizer_url is None
    assert empty.service_url("optimizer") == f"http://127.0.0.1:{empty.optimizer_port}"
