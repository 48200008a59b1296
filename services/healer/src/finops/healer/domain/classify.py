"""Classify one provider error: rules → learned text classifier → agent's hint → status.

The steps are those of the shared, stateless classification,
:mod:`finops.common.provider_errors.classify` (the optimizer reads it as it is): the specific
rules, then the agent's hint, then the status code, then ``unknown``. The healer puts its
learned state between the first two: when no specific rule matches, the
:class:`~finops.healer.domain.text_classifier.TextClassifier` reads the message and decides
if it is confident enough. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from finops.common.provider_errors.classify import (
    HINT,
    NO_RULE,
    fallback_verdict,
    specific_verdict,
)
from finops.common.provider_errors.matching import first_match
from finops.common.provider_errors.payload import enrich
from finops.common.provider_errors.rules import SPECIFIC_RULES
from finops.common.provider_errors.status_rules import STATUS_RULES
from finops.common.provider_errors.taxonomy import Classification, ErrorKind, ProviderError
from finops.common.provider_errors.waits import stated_wait_ms
from finops.healer.domain.text_classifier import TextClassifier

__all__ = ["CLASSIFIER", "HINT", "NO_RULE", "ErrorClassifier", "classify"]

CLASSIFIER = "classifier"


def classify(
    error: ProviderError,
    hint: ErrorKind | None = None,
    *,
    learned: TextClassifier | None = None,
    now: datetime | None = None,
) -> Classification:
    """The kind of ``error`` and the wait its provider stated.

    ``learned`` is the service's taught classifier (see :class:`ErrorClassifier`); without
    one, step 2 is skipped and the verdict is
    :func:`~finops.common.provider_errors.classify.classify_by_rules`'s. ``now`` anchors
    absolute times (``Retry-After`` as an HTTP date) when the response carries no ``date``
    header.
    """
    error = enrich(error)
    wait = stated_wait_ms(error, now)
    verdict = specific_verdict(error, wait)
    if verdict is None and learned is not None and error.message:
        guess = learned.predict(error.message)
        if guess is not None:
            verdict = Classification(guess.kind, CLASSIFIER, wait)
    return verdict or fallback_verdict(error, hint, wait)


#: Response headers some rule reads: the only ones a verdict can depend on.
RULE_HEADERS = tuple(
    sorted({rule.header[0] for rule in SPECIFIC_RULES + STATUS_RULES if rule.header})
)
#: Verdicts remembered by :class:`ErrorClassifier` before it starts afresh.
MAX_REMEMBERED = 8_192

VerdictKey = tuple[object, ...]


def verdict_key(error: ProviderError, hint: ErrorKind | None) -> VerdictKey:
    """What the kind and rule of ``error`` depend on (the stated wait is read anew each time:
    it may depend on the clock)."""
    return (
        error.message,
        error.status,
        error.provider,
        error.error_type,
        error.error_code,
        hint,
        *(error.headers.get(name) for name in RULE_HEADERS),
    )


class ErrorClassifier:
    """Rules plus one taught text classifier: the healer holds one and teaches it labels.

    A fleet repeats the same errors, and each error event is classified by more than one of
    the healer's consumers, so verdicts are remembered by :func:`verdict_key` (at most
    :data:`MAX_REMEMBERED`; forgotten whenever a label is taught).

    Examples
    --------
    >>> classifier = ErrorClassifier()
    >>> error = ProviderError("Rate limit reached. Please try again in 6ms.", 429, "openai")
    >>> first = classifier.classify(error)
    >>> first.kind.value, first.stated_wait_ms
    ('rate_limit', 6)
    >>> classifier.classify(error) == first, len(classifier.remembered)
    (True, 1)
    """

    def __init__(self, text: TextClassifier | None = None) -> None:
        self.text = text or TextClassifier()
        self.remembered: dict[VerdictKey, Classification] = {}

    def classify(
        self, error: ProviderError, hint: ErrorKind | None = None, *, now: datetime | None = None
    ) -> Classification:
        key = verdict_key(error, hint)
        known = self.remembered.get(key)
        if known is not None:
            return Classification(known.kind, known.rule, stated_wait_ms(enrich(error), now))
        verdict = classify(error, hint, learned=self.text, now=now)
        if len(self.remembered) >= MAX_REMEMBERED:
            self.remembered.clear()
        self.remembered[key] = verdict
        return verdict

    def teach(self, message: str, kind: ErrorKind) -> None:
        self.text.learn(message, kind)
        self.remembered.clear()  # a taught label may change any verdict the classifier gave

    def rule_for(self, error: ProviderError) -> str | None:
        """The specific rule that decides ``error`` whatever the classifier learns, if any."""
        rule = first_match(SPECIFIC_RULES, enrich(error))
        return rule.name if rule else None
