"""The status-only classification rules: the last tier, the status code alone decides.

They run only after the specific rules of :mod:`finops.common.provider_errors.rules` and the
agent's hint (and, in the healer, its learned text classifier) had their say (see
:mod:`finops.common.provider_errors.classify`); first match wins, so the single statuses come
before the ``5xx`` and ``4xx`` ranges.
"""

from __future__ import annotations

from collections.abc import Iterable

from finops.common.provider_errors.matching import Rule
from finops.common.provider_errors.rule_sources import ANTHROPIC_ERRORS, OPENAI_ERRORS
from finops.common.provider_errors.taxonomy import ErrorKind

K = ErrorKind


def _statuses(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110#name-status-codes"
STATUS_RULES: tuple[Rule, ...] = (
    Rule(name="status_401_403", kind=K.AUTH, source=RFC9110, statuses=_statuses((401, 403))),
    Rule(name="status_402", kind=K.QUOTA_EXHAUSTED, source=RFC9110, statuses=_statuses((402,))),
    Rule(
        name="status_404", kind=K.MODEL_NOT_FOUND, source=OPENAI_ERRORS, statuses=_statuses((404,))
    ),
    Rule(name="status_408", kind=K.TIMEOUT, source=RFC9110, statuses=_statuses((408,))),
    Rule(
        name="status_413",
        kind=K.CONTEXT_LENGTH_EXCEEDED,
        source="https://docs.anthropic.com/en/api/errors#http-errors",
        statuses=_statuses((413,)),
    ),
    Rule(name="status_429", kind=K.RATE_LIMIT, source=RFC9110, statuses=_statuses((429,))),
    Rule(name="status_529", kind=K.OVERLOADED, source=ANTHROPIC_ERRORS, statuses=_statuses((529,))),
    Rule(name="status_503", kind=K.OVERLOADED, source=RFC9110, statuses=_statuses((503,))),
    Rule(name="status_504", kind=K.TIMEOUT, source=RFC9110, statuses=_statuses((504, 524))),
    Rule(
        name="status_5xx", kind=K.SERVER_ERROR, source=RFC9110, statuses=_statuses(range(500, 600))
    ),
    Rule(
        name="status_4xx", kind=K.BAD_REQUEST, source=RFC9110, statuses=_statuses(range(400, 500))
    ),
)
