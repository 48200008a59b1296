"""Signing keys: from settings (PEM in the environment or a file), or kept under
``<data_dir>/keys/`` where the first key is generated and ``finops keys rotate`` rotates.

The managed folder holds ``current.pem`` (signs new tokens) and ``previous.pem`` (still in the
JWKS, so tokens signed before a rotation keep verifying until they expire). A file lock keeps
two processes from generating or rotating at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finops.auth.settings import AuthSettings
from finops.common.auth.key_sources import StaticKeys
from finops.common.auth.tokens import SigningKey, TokenSigner, generate_signing_key, jwks_document

CURRENT_KEY_FILE = "current.pem"
PREVIOUS_KEY_FILE = "previous.pem"


class KeyConfigurationError(RuntimeError):
    """The configured keys cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class KeyRing:
    current: SigningKey
    previous: SigningKey | None = None

    def jwks(self) -> dict[str, Any]:
        return jwks_document([self.current, *([self.previous] if self.previous else [])])


class KeyStore:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.folder = settings.keys_dir

    @property
    def managed(self) -> bool:
        """True when this store owns the keys (no key given in settings)."""
        settings = self.settings
        return settings.jwt_private_key_pem is None and settings.jwt_private_key_file is None

    def load(self) -> KeyRing:
        if not self.managed:
            return KeyRing(self._configured_current(), self._configured_previous())
        with self._locked():
            current_path = self.folder / CURRENT_KEY_FILE
            if not current_path.exists():
                _write_private(current_path, generate_signing_key())
            return self._read_managed()

    def rotate(self) -> KeyRing:
        """Make a new current key; the old current one becomes the previous one."""
        if not self.managed:
            raise KeyConfigurationError(
                "the signing key comes from settings (FINOPS_JWT_PRIVATE_KEY_PEM/_FILE); rotate it "
                "there and set the old one as FINOPS_JWT_PREVIOUS_KEY_PEM/_FILE"
            )
        current_path = self.folder / CURRENT_KEY_FILE
        if not current_path.exists():
            # Most likely the wrong folder (FINOPS_DATA_DIR is relative to where the command
            # runs): rotating would only make keys no running auth service reads.
            raise KeyConfigurationError(
                f"no signing key in {self.folder.resolve()}: auth has not run with this "
                "FINOPS_DATA_DIR; set it to the local stack's data folder (auth makes the "
                "first key when it starts)"
            )
        with self._locked():
            staged = self.folder / f"{CURRENT_KEY_FILE}.new"
            staged.unlink(missing_ok=True)
            _write_private(staged, generate_signing_key())
            os.replace(current_path, self.folder / PREVIOUS_KEY_FILE)
            os.replace(staged, current_path)
            return self._read_managed()

    def next_to_drop(self) -> tuple[str, float] | None:
        """The key the next rotation drops (the previous one), as its kid and when it last
        signed a token (the time the current key replaced it); None when there is none."""
        previous_path = self.folder / PREVIOUS_KEY_FILE
        if not self.managed or not previous_path.exists():
            return None
        replaced_at = (self.folder / CURRENT_KEY_FILE).stat().st_mtime
        return _read_private(previous_path).kid, replaced_at

    def stamp(self) -> tuple[int, ...]:
        """Changes whenever a key file changes (to notice a rotation by another process)."""
        if not self.managed:
            return ()
        stamps = []
        for name in (CURRENT_KEY_FILE, PREVIOUS_KEY_FILE):
            try:
                stat = (self.folder / name).stat()
                stamps += [stat.st_mtime_ns, stat.st_ino]
            except FileNotFoundError:
                stamps += [0, 0]
        return tuple(stamps)

    def _read_managed(self) -> KeyRing:
        current = _read_private(self.folder / CURRENT_KEY_FILE)
        previous_path = self.folder / PREVIOUS_KEY_FILE
        previous = _read_private(previous_path) if previous_path.exists() else None
        return KeyRing(current, previous)

    def _configured_current(self) -> SigningKey:
        if self.settings.jwt_private_key_pem is not None:
            pem = self.settings.jwt_private_key_pem.get_secret_value()
            return _parse(pem, "FINOPS_JWT_PRIVATE_KEY_PEM")
        assert self.settings.jwt_private_key_file is not None
        return _read_private(self.settings.jwt_private_key_file)

    def _configured_previous(self) -> SigningKey | None:
        if self.settings.jwt_previous_key_pem is not None:
            pem = self.settings.jwt_previous_key_pem.get_secret_value()
            return _parse(pem, "FINOPS_JWT_PREVIOUS_KEY_PEM")
        if self.settings.jwt_previous_key_file is not None:
            return _read_private(self.settings.jwt_previous_key_file)
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class ActiveKeys:
    """The key ring a running service signs and verifies with; reloads after a rotation."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.verification_keys = StaticKeys({"keys": []})
        store.load()  # generates the first key of a managed folder
        stamp = store.stamp()  # taken before the read below, so a rotation in between shows
        self.ring = store.load()
        self._apply(self.ring, stamp)

    def signer(self) -> TokenSigner:
        return self._signer

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def reload_if_changed(self) -> bool:
        stamp = self.store.stamp()
        if stamp == self._stamp:
            return False
        self.ring = self.store.load()
        self._apply(self.ring, stamp)
        return True

    def _apply(self, ring: KeyRing, stamp: tuple[int, ...]) -> None:
        settings = self.store.settings
        self._stamp = stamp
        self._jwks = ring.jwks()
        self.verification_keys.replace(self._jwks)
        self._signer = TokenSigner(
            ring.current,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        )


def _parse(pem: str | bytes, source: str) -> SigningKey:
    try:
        return SigningKey.from_pem(pem)
    except ValueError as exc:
        raise KeyConfigurationError(f"{source}: {exc}") from None


def _read_private(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigurationError(f"cannot read the signing key {path}: {exc}") from None
    return _parse(data, str(path))


def _write_private(path: Path, key: SigningKey) -> None:
    """Write a private key readable by its owner only; never over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_pem)
        out.flush()
        os.fsync(out.fileno())
