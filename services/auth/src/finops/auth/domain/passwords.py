"""Password hashing: argon2id for every new hash; legacy bcrypt hashes verify and get upgraded.

Pure computation (no I/O), but CPU-bound on purpose: callers on an event loop run it in a
thread (argon2-cffi and bcrypt release the GIL while hashing).
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2
OWASP_MIN_PARALLELISM = 1

BCRYPT_PREFIXES = ("$2b$", "$2a$", "$2y$")
BCRYPT_MAX_BYTES = 72  # bcrypt only ever looked at the first 72 bytes


@dataclass(frozen=True)
class Argon2Parameters:
    memory_kib: int = OWASP_MIN_MEMORY_KIB
    time_cost: int = OWASP_MIN_TIME_COST
    parallelism: int = OWASP_MIN_PARALLELISM

    def meets_owasp_minimum(self) -> bool:
        return (
            self.memory_kib >= OWASP_MIN_MEMORY_KIB
            and self.time_cost >= OWASP_MIN_TIME_COST
            and self.parallelism >= OWASP_MIN_PARALLELISM
        )


def normalized_text(password: str) -> str:
    """NFKC, as NIST SP 800-63B asks, so the same password typed on two keyboards matches.

    The password rules (common list, identity, the minimum length) judge this form: it is
    what gets hashed. The maximum length counts the password as sent, as the API's schema
    states it.
    """
    return unicodedata.normalize("NFKC", password)


def normalize(password: str) -> bytes:
    """The bytes that are hashed: NFKC, encoded with surrogatepass so no string, however
    odd, makes hashing raise."""
    return normalized_text(password).encode("utf-8", "surrogatepass")


def is_bcrypt_hash(hashed: str) -> bool:
    return hashed.startswith(BCRYPT_PREFIXES)


class PasswordHashing:
    def __init__(self, parameters: Argon2Parameters | None = None) -> None:
        self.parameters = parameters or Argon2Parameters()
        self._argon2 = PasswordHasher(
            time_cost=self.parameters.time_cost,
            memory_cost=self.parameters.memory_kib,
            parallelism=self.parameters.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # A real hash of a random password: verifying against it costs what a real login costs.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._argon2.hash(normalize(password))

    def verify(self, hashed: str, password: str) -> bool:
        """True when ``password`` matches; False on mismatch and on unreadable hashes."""
        if is_bcrypt_hash(hashed):
            return self._verify_bcrypt(hashed, password)
        try:
            return self._argon2.verify(hashed, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """Legacy bcrypt, or argon2 with other parameters than the current ones."""
        if is_bcrypt_hash(hashed):
            return True
        try:
            return self._argon2.check_needs_rehash(hashed)
        except (InvalidHashError, ValueError):
            return True

    def verify_dummy(self, password: str) -> None:
        """Spend one verification for an unknown user, so timing does not reveal who exists."""
        self.verify(self._dummy_hash, password)

    @staticmethod
    def _verify_bcrypt(hashed: str, password: str) -> bool:
        # Hashes come from a system that hashed the raw bytes and (silently) cut them at 72;
        # bcrypt 5 raises instead of cutting, so cut here to keep those passwords working.
        candidate = password.encode("utf-8", "surrogatepass")[:BCRYPT_MAX_BYTES]
        try:
            return bcrypt.checkpw(candidate, hashed.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return False
