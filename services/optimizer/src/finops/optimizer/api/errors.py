"""The errors the optimizer's endpoints share, as their OpenAPI ``responses`` name them."""

from __future__ import annotations

from finops.common.api_errors import BEARER, JSON_BODY, ApiError

INVALID = ApiError(
    422, "validation_error", "a parameter or the body is invalid (details: each field)"
)
CHECKPOINT_DOWN = ApiError(
    503,
    "dependency_unavailable",
    "PostgreSQL did not take the change (its record or its checkpoint) in time; see `Retry-After`",
)
READ = (*BEARER, INVALID)
WRITE = (
    *READ,
    *JSON_BODY,
    CHECKPOINT_DOWN,
)
