"""Response models keep the domain's bytes: integers stay integers, extra keys are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finops.common.response_body import Readiness


def test_a_key_no_model_declares_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Readiness.model_validate({"status": "ready", "checks": {}, "uptime": 3})
