"""One classification of provider errors, shared by the healer and the optimizer.

The taxonomy (:mod:`~finops.common.provider_errors.taxonomy`), how each provider's payload is
read (:mod:`~finops.common.provider_errors.payload`), the rule tables
(:mod:`~finops.common.provider_errors.rules`, :mod:`~finops.common.provider_errors.status_rules`)
and the waits providers state (:mod:`~finops.common.provider_errors.waits`), put together by
:func:`~finops.common.provider_errors.classify.classify_by_rules`. Stateless and pure: no I/O,
no learned state (the healer's learned text classifier stays the healer's).
"""

from __future__ import annotations

from finops.common.provider_errors.classify import classify_by_rules
from finops.common.provider_errors.payload import ReportedError, from_error_data, from_error_info
from finops.common.provider_errors.taxonomy import (
    PROVIDER_FAULT_KINDS,
    RETRYABLE_KINDS,
    Classification,
    ErrorKind,
    ProviderError,
)

__all__ = [
    "PROVIDER_FAULT_KINDS",
    "RETRYABLE_KINDS",
    "Classification",
    "ErrorKind",
    "ProviderError",
    "ReportedError",
    "classify_by_rules",
    "from_error_data",
    "from_error_info",
]
