"""FINOPS_KAFKA_SECURITY_PROTOCOL reaches every Kafka client a service builds: the aiokafka
producers, consumers and admin clients (the readiness probe's client takes the same
``security_config``), and the Faust apps of the healer and the experiments. No broker is
contacted: the clients are only built."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka.client import AIOKafkaClient

from finops.common.kafka import make_admin, make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.streams import StreamSettings, make_faust_app

SASL = {
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "finops",
    "kafka_sasl_password": "a-real-password",
}


def _settings(protocol: str, **extra: object) -> StreamSettings:
    return StreamSettings(
        faust_app_id="finops-security-test",
        kafka_bootstrap="kafka.example.internal:9093",
        kafka_security_protocol=protocol,
        **extra,
    )


def _aiokafka_clients(settings: CommonSettings) -> list[AIOKafkaClient]:
    return [
        make_producer(settings).client,
        make_consumer(settings, "agent.cost.v1", group_id="g")._client,
        make_admin(settings)._client,
    ]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
async def test_tls_protocols_build_clients_with_a_verifying_ssl_context(protocol):
    # aiokafka refuses SSL and SASL_SSL without an SSL context: every service failed to start
    extra = SASL if protocol == "SASL_SSL" else {}
    settings = _settings(protocol, **extra)
    for client in _aiokafka_clients(settings):
        assert client._security_protocol == protocol
        assert isinstance(client._ssl_context, ssl.SSLContext)
        assert client._ssl_context.verify_mode == ssl.CERT_REQUIRED
        assert client._ssl_context.check_hostname


async def test_plaintext_clients_have_no_ssl_context():
    for client in _aiokafka_clients(_settings("PLAINTEXT")):
        assert client._security_protocol == "PLAINTEXT"
        assert client._ssl_context is None


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A self-signed CA certificate (PEM), as Strimzi's cluster CA is."""
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subject = ["-subj", "/CN=finops-test-ca", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject],
        check=True,
        capture_output=True,
    )
    return cert


async def test_the_ca_file_is_the_one_trusted(ca_file: Path):
    settings = _settings("SSL", kafka_ssl_cafile=ca_file)
    context = make_producer(settings).client._ssl_context
    assert [ca["subject"] for ca in context.get_ca_certs()] == [
        ((("commonName", "finops-test-ca"),),)
    ]


@pytest.mark.parametrize(
    ("protocol", "extra", "expected"),
    [
        ("PLAINTEXT", {}, {"security_protocol": "PLAINTEXT"}),
        ("SSL", {}, {"security_protocol": "SSL"}),
        (
            "SASL_PLAINTEXT",
            SASL,
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "finops",
                "sasl_plain_password": "a-real-password",
            },
        ),
        (
            "SASL_SSL",
            SASL,
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "finops",
                "sasl_plain_password": "a-real-password",
            },
        ),
    ],
)
def test_faust_apps_connect_with_the_same_security_settings(protocol, extra, expected):
    # Faust's own consumer and producer take what this function gives them: before, the
    # healer's and the experiments' Faust apps always spoke PLAINTEXT.
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    app = make_faust_app(_settings(protocol, **extra))
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert {k: v for k, v in auth.items() if k != "ssl_context"} == expected
    if protocol.endswith("SSL"):
        assert isinstance(auth["ssl_context"], ssl.SSLContext)
    else:
        assert auth.get("ssl_context") is None
