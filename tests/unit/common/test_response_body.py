"""Response models keep the domain's bytes: integers stay integers, extra keys are refused."""

from __future__ import annotations

import doctest

import pytest
from pydantic import ValidationError

from finops.common import response_body
from finops.common.response_body import Readiness


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(response_body)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_key_no_model_declares_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Readiness.model_validate({"status": "ready", "checks": {}, "uptime": 3})
