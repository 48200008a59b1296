from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS, CommonSettings


class AuthSettings(CommonSettings):
    service_name: str = "auth"
    port: int = DEFAULT_PORTS["auth"]
    max_body_bytes: int = 64 * 1024
