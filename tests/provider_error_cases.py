"""The real provider error payloads of ``tests/unit/healer/provider_errors.json`` (each with
its public source and the kind the healer's rules give it), shared by the tests of the
classification (healer and ``finops.common.provider_errors``) and of the remedies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finops.common.provider_errors.payload import provider_error
from finops.common.provider_errors.taxonomy import ProviderError

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "unit" / "healer" / "provider_errors.json").read_text(encoding="utf-8")
)["cases"]


def to_error(case: dict[str, Any]) -> ProviderError:
    """The provider error one case reports."""
    return provider_error(
        status=case.get("status"),
        body=case.get("body"),
        headers=case.get("headers"),
        provider=case["provider"],
        message=case.get("message"),
    )
