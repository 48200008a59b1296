"""`finops env` prints what a process needs to join the local stack, as `export` lines."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from finops.cli.main import app
from finops.common.settings import LOCAL_BROKER_ENV

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
CLEARED = dict.fromkeys(
    ["FINOPS_DATABASE_URL", "FINOPS_REDIS_URL", "FINOPS_KAFKA_BOOTSTRAP", "FINOPS_KAFKA_PORT"]
)


def exported(env: dict[str, str | None]) -> dict[str, str]:
    result = CliRunner().invoke(app, ["env"], env={**PLAIN, **CLEARED, **env})
    assert result.exit_code == 0, result.output
    pairs = {}
    for line in result.stdout.splitlines():
        export, assignment = shlex.split(line)
        assert export == "export"
        key, _, value = assignment.partition("=")
        pairs[key] = value
    return pairs


def test_the_stacks_addresses_and_its_brokers_settings_are_exported() -> None:
    # a second healer started by hand with the addresses alone failed at start-up with
    # "Unexpected error during InitProducerIdRequest: UnknownError" (idempotence, which the
    # local broker does not take, on)
    pairs = exported({"FINOPS_POSTGRES_PORT": "55999", "FINOPS_REDIS_URL": "redis://r:1/0"})
    assert pairs["FINOPS_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:55999/finops"
    assert pairs["FINOPS_REDIS_URL"] == "redis://r:1/0"  # set by the user: it wins
    assert pairs["FINOPS_KAFKA_BOOTSTRAP"] == "127.0.0.1:59092"
    assert pairs["FINOPS_AUTH_URL"] == "http://127.0.0.1:8001"
    assert {k: pairs[k] for k in LOCAL_BROKER_ENV} == LOCAL_BROKER_ENV
    assert pairs["FINOPS_KAFKA_ENABLE_IDEMPOTENCE"] == "false"


def test_a_broker_of_ones_own_gets_no_local_broker_settings() -> None:
    pairs = exported({"FINOPS_KAFKA_BOOTSTRAP": "kafka-0:9092,kafka-1:9092"})
    assert pairs["FINOPS_KAFKA_BOOTSTRAP"] == "kafka-0:9092,kafka-1:9092"
    assert not set(LOCAL_BROKER_ENV) & set(pairs)
