"""Opaque secrets: refresh tokens and API keys. Random, shown once, stored as SHA-256.

Both carry 256 random bits, so a fast hash is enough to make a stolen table useless (a slow
password hash protects low-entropy secrets; these are not). Lookup is by hash.
"""

from __future__ import annotations

import hashlib
import secrets

# defined beside the token verifier, which tells a user who sends one as an access token
from finops.common.auth.tokens import API_KEY_PREFIX as API_KEY_PREFIX
from finops.common.auth.tokens import REFRESH_PREFIX as REFRESH_PREFIX

API_KEY_DISPLAY_CHARS = 12


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_refresh_token() -> tuple[str, str]:
    """(token, its hash)."""
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return token, hash_secret(token)


def new_api_key() -> tuple[str, str, str]:
    """(key, its hash, a display prefix)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_secret(key), key[:API_KEY_DISPLAY_CHARS]
