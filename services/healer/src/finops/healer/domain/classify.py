"""Classify one provider error: rules → learned text classifier → agent's hint → status.

1. The specific rules of :data:`~finops.healer.domain.rules.SPECIFIC_RULES` (the provider's
   error type or code, a known message, a header) decide when one matches.
2. Otherwise the learned :class:`~finops.healer.domain.text_classifier.TextClassifier` reads
   the message, and decides if it is confident enough.
3. Otherwise the agent's own ``error.kind`` (the hint) is taken, when it sent one.
4. Otherwise the status code alone decides (:data:`~finops.healer.domain.rules.STATUS_RULES`:
   401/403 → auth, 404 → model_not_found, 429 → rate_limit, 503 → overloaded, 5xx → …).
5. Otherwise the kind is ``unknown``.

Before that, :func:`~finops.healer.domain.payload.enrich` pulls the provider's type, code and
status out of messages that embed the response body (``Error code: 429 - {'error': …}``), and
:func:`~finops.healer.domain.waits.stated_wait_ms` reads the wait the provider asked for.
Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from finops.healer.domain.matching import first_match
from finops.healer.domain.payload import enrich
from finops.healer.domain.rules import SPECIFIC_RULES, STATUS_RULES
from finops.healer.domain.taxonomy import Classification, ErrorKind, ProviderError
from finops.healer.domain.text_classifier import TextClassifier
from finops.healer.domain.waits import stated_wait_ms

CLASSIFIER = "classifier"
HINT = "hint"
NO_RULE = "none"


def classify(
    error: ProviderError,
    hint: ErrorKind | None = None,
    *,
    learned: TextClassifier | None = None,
    now: datetime | None = None,
) -> Classification:
    """The kind of ``error`` and the wait its provider stated.

    ``learned`` is the service's taught classifier (see :class:`ErrorClassifier`); without
    one, step 2 is skipped. ``now`` anchors absolute times (``Retry-After`` as an HTTP date)
    when the response carries no ``date`` header.
    """
    error = enrich(error)
    wait = stated_wait_ms(error, now)
    rule = first_match(SPECIFIC_RULES, error)
    if rule is not None:
        return Classification(rule.kind, rule.name, wait)
    if learned is not None and error.message:
        guess = learned.predict(error.message)
        if guess is not None:
            return Classification(guess.kind, CLASSIFIER, wait)
    if hint is not None and hint is not ErrorKind.UNKNOWN:
        return Classification(hint, HINT, wait)
    rule = first_match(STATUS_RULES, error)
    if rule is not None:
        return Classification(rule.kind, rule.name, wait)
    return Classification(ErrorKind.UNKNOWN, NO_RULE, wait)


class ErrorClassifier:
    """Rules plus one taught text classifier: the healer holds one and teaches it labels."""

    def __init__(self, text: TextClassifier | None = None) -> None:
        self.text = text or TextClassifier()

    def classify(
        self, error: ProviderError, hint: ErrorKind | None = None, *, now: datetime | None = None
    ) -> Classification:
        return classify(error, hint, learned=self.text, now=now)

    def teach(self, message: str, kind: ErrorKind) -> None:
        self.text.learn(message, kind)

    def rule_for(self, error: ProviderError) -> str | None:
        """The specific rule that decides ``error`` whatever the classifier learns, if any."""
        rule = first_match(SPECIFIC_RULES, enrich(error))
        return rule.name if rule else None
