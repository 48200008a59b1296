"""argon2id hashing at OWASP cost, rehash decisions and the bcrypt upgrade path."""

from __future__ import annotations

import bcrypt
import pytest
from argon2 import PasswordHasher

from finops.auth.domain.passwords import Argon2Parameters, PasswordHashing

PASSWORD = "violet tractor mirage 42"


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing()


def test_defaults_meet_owasp_and_hashes_are_argon2id(hashing):
    assert hashing.parameters == Argon2Parameters(19 * 1024, 2, 1)
    assert hashing.parameters.meets_owasp_minimum()
    assert not Argon2Parameters(8 * 1024, 2, 1).meets_owasp_minimum()
    hashed = hashing.hash(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hashing.hash(PASSWORD) != hashed  # salted
    assert hashing.verify(hashed, PASSWORD)
    assert not hashing.verify(hashed, PASSWORD + " ")
    assert not hashing.needs_rehash(hashed)


def test_unicode_is_normalised_before_hashing(hashing):
    composed, decomposed = "caf\u00e9 au lait 123", "cafe\u0301 au lait 123"
    assert hashing.verify(hashing.hash(composed), decomposed)


def test_weaker_argon2_hashes_need_a_rehash(hashing):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert hashing.verify(weak, PASSWORD)
    assert hashing.needs_rehash(weak)


def test_bcrypt_hashes_verify_and_always_need_a_rehash(hashing):
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    assert legacy.startswith("$2b$")
    assert hashing.verify(legacy, PASSWORD)
    assert not hashing.verify(legacy, "wrong password!")
    assert hashing.needs_rehash(legacy)


def test_long_bcrypt_passwords_keep_working_as_they_were_truncated(hashing):
    long_password = "x" * 100
    legacy = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert hashing.verify(legacy, long_password)


@pytest.mark.parametrize("garbage", ["", "plain", "$argon2id$broken", "$2b$04$short"])
def test_unreadable_hashes_never_verify(hashing, garbage):
    assert not hashing.verify(garbage, PASSWORD)
    assert hashing.needs_rehash(garbage)


def test_the_dummy_verification_runs_a_real_hash(hashing):
    hashing.verify_dummy(PASSWORD)  # must not raise, whatever the password
    hashing.verify_dummy("\ud800 lone surrogate")
