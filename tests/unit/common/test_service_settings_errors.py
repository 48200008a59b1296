"""A service started with a malformed or refused setting ends with one line naming it."""

from __future__ import annotations

import pytest

from finops.auth.settings import AuthSettings
from finops.common import runner, settings_errors
from finops.experiments.settings import ExperimentsSettings
from finops.healer.settings import HealerSettings
from finops.ingest.settings import IngestSettings
from finops.optimizer.settings import OptimizerSettings


def _never_built(settings: object) -> object:
    raise AssertionError("the app was built with settings that were refused")


def test_a_malformed_setting_ends_the_service_with_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FINOPS_REDIS_URL", "redis://:hunter2@cache:99999/0")
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, HealerSettings)
    assert ended.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: FINOPS_REDIS_URL: should be a URL of the form redis://")
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost/finops", "no postgresql:// scheme"),
        ("mysql://finops:pw@db:3306/finops", "no postgresql:// scheme"),
        ("postgresql://finops@db:port/finops", "the port is not a number from 0 to 65535"),
    ],
)
def test_a_malformed_database_url_ends_the_service_with_one_line(
    monkeypatch, capsys, url, problem
) -> None:
    # it passed as a plain string and ended in asyncpg's "invalid DSN" traceback (exit 3)
    monkeypatch.setenv("FINOPS_DATABASE_URL", url)
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, AuthSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: FINOPS_DATABASE_URL: should be a URL of the form"
        f" postgresql://USER:PASSWORD@HOST:PORT/DATABASE ({problem})"
    ]


def test_a_rule_over_several_settings_is_its_message_alone(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FINOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("FINOPS_REDIS_URL", "redis://:changeme@cache:6379/0")
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, AuthSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: refusing a placeholder password in FINOPS_REDIS_URL; set a real one"
    ]


def test_a_list_setting_that_is_not_json_ends_the_service_with_one_line(monkeypatch, capsys):
    # pydantic-settings' SettingsError, not a ValidationError: it ended in a traceback
    monkeypatch.setenv("FINOPS_FALLBACK_MODELS", "gpt-4o,claude")
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, HealerSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: FINOPS_FALLBACK_MODELS=gpt-4o,claude: "
        'should be JSON (a list such as ["a", "b"], or an object)'
    ]


def test_weak_argon2_parameters_name_their_variables(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FINOPS_ENVIRONMENT", "local")
    monkeypatch.setenv("FINOPS_ARGON2_TIME_COST", "1")
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, AuthSettings)
    assert ended.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: FINOPS_ARGON2_MEMORY_KIB, FINOPS_ARGON2_TIME_COST, ")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("FINOPS_LOG_LEVEL", "verbose", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("FINOPS_ENVIRONMENT", "prod", "'local', 'test' or 'production'"),
        ("FINOPS_KAFKA_ACKS", "2", "'all', '-1', '1' or '0'"),
        (
            "FINOPS_KAFKA_SECURITY_PROTOCOL",
            "TLS",
            "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'",
        ),
    ],
)
def test_a_setting_outside_its_values_ends_the_service_with_one_line(
    monkeypatch, capsys, variable, value, allowed
) -> None:
    # As plain strings these passed the check and failed later, in logging or aiokafka,
    # with a traceback (a crash `finops up` restarted, not a refused setting).
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, HealerSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {variable}={value}: Input should be {allowed}"
    ]


@pytest.mark.parametrize("acks", ["1", "0"])
def test_acks_below_all_with_idempotent_producers_ends_the_service_with_one_line(
    monkeypatch, capsys, acks
) -> None:
    # aiokafka refuses acks 1 or 0 with idempotence (the default) only when a producer is
    # built: every service ended its start in a ValueError traceback, restarted for ever
    from finops.common.kafka import producer_config

    monkeypatch.setenv("FINOPS_KAFKA_ACKS", acks)
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, HealerSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: FINOPS_KAFKA_ACKS={acks} needs FINOPS_KAFKA_ENABLE_IDEMPOTENCE=false (an"
        " idempotent producer waits for every in-sync replica: acks=all)"
    ]
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", "false")
    conf = producer_config(HealerSettings())
    assert (conf["acks"], conf["enable_idempotence"]) == (int(acks), False)


def test_the_local_stack_takes_acks_1_and_its_services_get_it(monkeypatch, tmp_path) -> None:
    # the stack's own broker turns idempotence off for its services (LOCAL_BROKER_ENV), so
    # `FINOPS_KAFKA_ACKS=1 finops up` is no conflict; with a broker of one's own it is
    from finops.cli.commands.stack import _stack_settings
    from finops.cli.stack.local_stack import Stack
    from finops.common.kafka import producer_config
    from finops.common.settings_errors import SETTINGS_ERRORS

    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINOPS_KAFKA_ACKS", "1")
    stack = Stack(_stack_settings())
    # what a service of the stack reads: the environment with the stack's own on top
    for name, value in stack.service_env().items():
        monkeypatch.setenv(name, value)
    for service_settings in (HealerSettings, IngestSettings, ExperimentsSettings):
        conf = producer_config(service_settings())
        assert (conf["acks"], conf["enable_idempotence"]) == (1, False)
    monkeypatch.delenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE")
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "kafka.example.internal:9092")
    with pytest.raises(SETTINGS_ERRORS, match="FINOPS_KAFKA_ENABLE_IDEMPOTENCE=false"):
        _stack_settings()


def test_log_level_and_security_protocol_are_read_in_any_case(monkeypatch) -> None:
    monkeypatch.setenv("FINOPS_LOG_LEVEL", "debug")
    monkeypatch.setenv("FINOPS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    settings = HealerSettings()
    assert (settings.log_level, settings.kafka_security_protocol) == ("DEBUG", "SASL_SSL")


def test_values_that_worked_as_plain_strings_still_do(monkeypatch) -> None:
    # -1 is Kafka's own name for all; CRITICAL a level logging takes
    from finops.common.kafka import producer_config

    monkeypatch.setenv("FINOPS_KAFKA_ACKS", "-1")
    monkeypatch.setenv("FINOPS_LOG_LEVEL", "critical")
    settings = HealerSettings()
    assert (settings.kafka_acks, settings.log_level) == ("-1", "CRITICAL")
    assert producer_config(settings)["acks"] == -1


def test_a_value_refused_from_an_argument_is_named_as_given_not_as_the_environment_says(
    monkeypatch,
) -> None:
    # an argument wins over the environment: the line names the value that was refused
    from pydantic import ValidationError

    monkeypatch.setenv("FINOPS_LOG_LEVEL", "INFO")
    with pytest.raises(ValidationError) as refused:
        HealerSettings(log_level="loud")
    assert settings_errors.settings_problems(refused.value).startswith("FINOPS_LOG_LEVEL=LOUD:")


SERVICE_SETTINGS = [
    AuthSettings,
    IngestSettings,
    OptimizerSettings,
    HealerSettings,
    ExperimentsSettings,
]


@pytest.mark.parametrize("settings_class", SERVICE_SETTINGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("FINOPS_DATABASE_URL", "postgresql://finops:changeme@db:5432/finops"),
        ("FINOPS_REDIS_URL", "redis://:password@cache:6379/0"),
    ],
)
def test_every_service_refuses_a_placeholder_password_outside_the_local_stack(
    monkeypatch, capsys, settings_class: type, variable: str, url: str
) -> None:
    """Auth alone refused them: the other services started on a copied example's password."""
    monkeypatch.setenv(variable, url)
    monkeypatch.setenv("FINOPS_ENVIRONMENT", "production")
    with pytest.raises(SystemExit) as ended:
        runner.serve(_never_built, settings_class)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: refusing a placeholder password in {variable}; set a real one"
    ]
    monkeypatch.setenv("FINOPS_ENVIRONMENT", "local")  # the embedded stack's own passwords
    assert getattr(settings_class(), variable.removeprefix("FINOPS_").lower()) == url


def test_an_empty_password_in_a_url_is_no_placeholder(monkeypatch) -> None:
    """``user:@host`` has no password (trust, certificates, a .pgpass): not refused."""
    monkeypatch.setenv("FINOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("FINOPS_DATABASE_URL", "postgresql://finops:@db:5432/finops")
    monkeypatch.setenv("FINOPS_REDIS_URL", "redis://:@cache:6379/0")
    settings = HealerSettings()
    assert settings.database_url == "postgresql://finops:@db:5432/finops"
    assert settings.redis_url == "redis://:@cache:6379/0"
