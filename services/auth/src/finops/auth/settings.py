"""The auth service's settings (``FINOPS_`` environment variables), checked at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from finops.auth.domain.passwords import Argon2Parameters
from finops.common.auth.tokens import SigningKey
from finops.common.settings import DEFAULT_PORTS, PLACEHOLDER_SECRETS, CommonSettings, Port


class AccountSettings(CommonSettings):
    """What creating or deactivating an account needs: the database, the password hashing and
    the tokens' lifetimes (how long a deactivated account's tokens stay refused). ``finops
    users create`` and ``deactivate`` read these alone, so a signing key they never use,
    unreadable where they run, does not refuse them."""

    service_name: str = "auth"

    access_token_ttl_seconds: int = Field(
        15 * 60, ge=30, le=24 * 3600, description="lifetime of an access token (seconds)"
    )
    api_key_token_ttl_seconds: int = Field(
        15 * 60, ge=30, le=24 * 3600, description="lifetime of a token issued for an API key"
    )

    # argon2id cost; below OWASP's minimum only with environment=test (fast test suites).
    argon2_memory_kib: int = Field(19 * 1024, ge=8)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_parallelism: int = Field(1, ge=1)

    @property
    def argon2(self) -> Argon2Parameters:
        return Argon2Parameters(
            self.argon2_memory_kib, self.argon2_time_cost, self.argon2_parallelism
        )

    @model_validator(mode="after")
    def _refuse_weak_configuration(self) -> Self:
        if self.environment != "test" and not self.argon2.meets_owasp_minimum():
            raise ValueError(
                "FINOPS_ARGON2_MEMORY_KIB, FINOPS_ARGON2_TIME_COST, FINOPS_ARGON2_PARALLELISM"
                " below OWASP's minimum (19456, 2, 1) are only allowed with"
                " FINOPS_ENVIRONMENT=test"
            )
        return self


class AuthSettings(AccountSettings):
    service_name: str = "auth"
    port: Port = DEFAULT_PORTS["auth"]
    #: largest request body accepted (bytes); larger ones get 413 payload_too_large
    max_body_bytes: int = Field(64 * 1024, gt=0)
    #: PostgreSQL connections this instance may hold
    db_pool_max_size: int = Field(10, ge=1)

    # Signing keys. Either a PEM (env) or a PEM file; with neither, the service keeps its keys
    # under <data_dir>/keys/ and generates the first one (the local stack's way).
    jwt_private_key_pem: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    jwt_previous_key_pem: SecretStr | None = None
    jwt_previous_key_file: Path | None = None
    key_reload_seconds: float = Field(5.0, gt=0, description="how often to look for rotated keys")

    refresh_token_ttl_seconds: int = Field(
        14 * 24 * 3600, ge=60, description="lifetime of a refresh token (seconds; 14 days)"
    )
    refresh_token_prune_seconds: float = Field(
        3600, gt=0, description="how often expired refresh tokens are deleted"
    )

    #: failed logins within the window before an account, or an address, is refused (429)
    login_max_failures_per_account: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(50, ge=1)
    login_failure_window_seconds: int = Field(15 * 60, ge=1)

    #: whether POST /api/auth/register creates agent accounts for anyone (false: 403
    #: registration_closed, accounts made by an admin: `finops users create`)
    registration_open: bool = True
    #: registrations one client may start per window (429 too_many_registrations beyond); a
    #: client is its address (an IPv6 one by its /64, a NAT64 one, 64:ff9b::/96, by the IPv4
    #: address it embeds), the proxy's unless trusted_proxies
    registration_max_per_address: int = Field(60, ge=1)
    #: the registration window (seconds), opened by a client's first registration
    registration_window_seconds: int = Field(60, ge=1)
    #: registration password hashes (argon2, tens of ms of a core each) at once per process
    registration_hashes_in_flight: int = Field(2, ge=1)
    #: how long a registration waits for one of those (seconds), then 429 registration_busy
    registration_hash_wait_seconds: float = Field(2.0, ge=0)

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    # The configured keys are read and checked here, not first when the service starts
    # serving: a key that cannot sign stops the service with the one line naming the
    # variable that every other refused setting gets (exit status 2), and the service's
    # start-up code can trust them. Keys of the managed folder are made by auth itself.
    @field_validator("jwt_private_key_pem", "jwt_previous_key_pem")
    @classmethod
    def _refuse_unusable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        pem = value.get_secret_value()
        if pem.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("refusing a placeholder secret; set a real PEM private key")
        SigningKey.from_pem(pem)  # its ValueError says what is wrong (not PEM, not RSA, short)
        return value

    @field_validator("jwt_private_key_file", "jwt_previous_key_file")
    @classmethod
    def _refuse_unusable_key_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        try:
            pem = value.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        try:
            SigningKey.from_pem(pem)
        except ValueError as exc:
            raise ValueError(f"{value}: {exc}") from None
        return value
