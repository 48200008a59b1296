"""AuthSettings refuses placeholders and weak hashing; the key store generates and rotates."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from finops.auth.adapters.keystore import ActiveKeys, KeyConfigurationError, KeyStore
from finops.auth.settings import AuthSettings
from finops.common.auth import generate_signing_key
from finops.common.settings_errors import settings_error_line


def test_defaults_meet_owasp_and_limit_bodies_to_64_kib():
    settings = AuthSettings()
    assert (settings.argon2_memory_kib, settings.argon2_time_cost) == (19456, 2)
    assert settings.max_body_bytes == 64 * 1024
    assert settings.access_token_ttl_seconds == 900


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "", "  CHANGETHIS "])
def test_placeholder_signing_keys_are_refused(placeholder):
    with pytest.raises(ValidationError, match="placeholder"):
        AuthSettings(jwt_private_key_pem=placeholder)


def test_weak_hashing_only_in_tests():
    with pytest.raises(ValidationError, match="OWASP"):
        AuthSettings(argon2_memory_kib=1024)
    assert AuthSettings(argon2_memory_kib=1024, environment="test").argon2.memory_kib == 1024


def test_placeholder_database_passwords_are_refused_outside_local():
    url = "postgresql://finops:changeme@db:5432/finops"
    assert AuthSettings(database_url=url)  # the local stack may do as it likes
    with pytest.raises(ValidationError, match="FINOPS_DATABASE_URL"):
        AuthSettings(database_url=url, environment="production")


def test_a_managed_key_is_generated_once_then_reused(tmp_path):
    store = KeyStore(AuthSettings(data_dir=tmp_path))
    first = store.load()
    assert store.load() == first and first.previous is None
    assert (tmp_path / "keys" / "current.pem").stat().st_mode & 0o777 == 0o600


def test_rotation_keeps_exactly_one_previous_key(tmp_path):
    store = KeyStore(AuthSettings(data_dir=tmp_path))
    original = store.load()
    rotated = store.rotate()
    assert rotated.previous == original.current
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [rotated.current.kid, original.current.kid]
    again = store.rotate()
    assert again.previous == rotated.current
    assert original.current.kid not in {k["kid"] for k in again.jwks()["keys"]}


def test_rotation_refuses_a_folder_without_a_key(tmp_path):
    # the wrong FINOPS_DATA_DIR: rotating would make keys no running auth service reads
    with pytest.raises(KeyConfigurationError, match=r"no signing key in .*FINOPS_DATA_DIR"):
        KeyStore(AuthSettings(data_dir=tmp_path)).rotate()
    assert not (tmp_path / "keys" / "current.pem").exists()
    assert not (tmp_path / "keys" / "previous.pem").exists()


def test_running_services_notice_a_rotation(tmp_path):
    settings = AuthSettings(data_dir=tmp_path)
    active = ActiveKeys(KeyStore(settings))
    before = active.signer().kid
    assert not active.reload_if_changed()
    KeyStore(settings).rotate()
    assert active.reload_if_changed()
    assert active.signer().kid != before
    assert active.verification_keys.kids == {active.signer().kid, before}


def test_keys_from_settings_are_used_and_not_rotated(tmp_path):
    current, previous = generate_signing_key(), generate_signing_key()
    settings = AuthSettings(
        data_dir=tmp_path,
        jwt_private_key_pem=current.private_pem.decode(),
        jwt_previous_key_pem=previous.private_pem.decode(),
    )
    ring = KeyStore(settings).load()
    assert (ring.current.kid, ring.previous.kid) == (current.kid, previous.kid)
    with pytest.raises(KeyConfigurationError, match="rotate it"):
        KeyStore(settings).rotate()
    assert not (tmp_path / "keys").exists()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


UNUSABLE_KEYS = {
    "not PEM": (b"not a key\n", "not a usable PEM private key"),
    "short RSA": (
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 (must be refused)
        "must have at least 2048 bits",
    ),
    "EC": (_pem(ec.generate_private_key(ec.SECP256R1())), "must be an RSA private key"),
}


@pytest.mark.parametrize("setting", ["jwt_private_key_file", "jwt_previous_key_file"])
@pytest.mark.parametrize("unusable", UNUSABLE_KEYS.values(), ids=UNUSABLE_KEYS.keys())
def test_an_unusable_key_file_is_refused_with_the_settings(tmp_path, setting, unusable):
    # it was found only in the service's lifespan: a traceback and exit status 3
    content, reason = unusable
    bad = tmp_path / "key.pem"
    bad.write_bytes(content)
    with pytest.raises(ValidationError) as refused:
        AuthSettings(**{setting: bad})
    line = settings_error_line(refused.value)
    assert line.startswith(f"FINOPS_{setting.upper()}: {bad}: ")
    assert reason in line


@pytest.mark.parametrize("setting", ["jwt_private_key_pem", "jwt_previous_key_pem"])
@pytest.mark.parametrize("unusable", UNUSABLE_KEYS.values(), ids=UNUSABLE_KEYS.keys())
def test_an_unusable_key_pem_is_refused_with_the_settings(setting, unusable):
    content, reason = unusable
    with pytest.raises(ValidationError) as refused:
        AuthSettings(**{setting: content.decode()})
    line = settings_error_line(refused.value)
    assert line.startswith(f"FINOPS_{setting.upper()}: ")
    assert reason in line


def test_a_missing_key_file_is_refused_with_the_settings(tmp_path):
    missing = tmp_path / "absent.pem"
    with pytest.raises(ValidationError) as refused:
        AuthSettings(jwt_private_key_file=missing)
    assert settings_error_line(refused.value) == (
        f"FINOPS_JWT_PRIVATE_KEY_FILE: cannot read {missing}: No such file or directory"
    )


def test_a_service_given_an_unusable_key_file_ends_with_one_line(monkeypatch, capsys, tmp_path):
    from finops.common import runner

    def never_built(settings: object) -> object:
        raise AssertionError("the app was built with a key that cannot sign")

    monkeypatch.setenv("FINOPS_JWT_PRIVATE_KEY_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(SystemExit) as ended:
        runner.serve(never_built, AuthSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: FINOPS_JWT_PRIVATE_KEY_FILE: cannot read {tmp_path / 'absent.pem'}:"
        " No such file or directory"
    ]


def test_a_usable_key_file_is_used(tmp_path):
    key = generate_signing_key()
    good = tmp_path / "key.pem"
    good.write_bytes(key.private_pem)
    assert KeyStore(AuthSettings(jwt_private_key_file=good)).load().current.kid == key.kid


def test_forwarded_headers_are_believed_only_from_configured_proxies(monkeypatch):
    from finops.common.runner import uvicorn_options
    from finops.common.settings import CommonSettings

    monkeypatch.delenv("FINOPS_TRUSTED_PROXIES", raising=False)
    default = uvicorn_options(CommonSettings())
    assert (default["proxy_headers"], default["forwarded_allow_ips"]) == (False, [])

    monkeypatch.setenv("FINOPS_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    behind_proxies = uvicorn_options(CommonSettings())
    assert behind_proxies["proxy_headers"] is True
    assert behind_proxies["forwarded_allow_ips"] == ["10.0.0.5", "10.1.0.0/16"]
    monkeypatch.setenv("FINOPS_TRUSTED_PROXIES", '["::1"]')
    assert CommonSettings().trusted_proxies == ["::1"]
    monkeypatch.setenv("FINOPS_TRUSTED_PROXIES", "10.0.0.5,everyone")
    with pytest.raises(ValidationError, match="everyone"):
        CommonSettings()
