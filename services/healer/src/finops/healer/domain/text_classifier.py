"""The learned part of classification: an online text classifier over error messages.

Messages no rule knows go here. It is river's multinomial naive Bayes over a bag of words and
word pairs, taught one label at a time by operators (``POST /api/healing/labels``). It knows
nothing until it is taught: what it answers is only ever what operators said.

It answers only when it has grounds to: the message must share at least
``min_known_features`` features with what it was taught, and the most likely kind must reach
``threshold``; otherwise it abstains and the caller falls back to the agent's hint. A message
taught verbatim (after the same normalisation) is answered from memory, latest label wins, so
correcting a label takes effect at once.

Normalisation replaces what varies between two occurrences of the same error (numbers, ids,
URLs, quoted names) with placeholders, so "… 4097 tokens … 5000 …" and "… 8192 tokens …
9000 …" look alike. Pure: no I/O; the labels are persisted by the service and replayed
through :meth:`TextClassifier.learn` at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from river import feature_extraction, naive_bayes

from finops.common.provider_errors.taxonomy import ErrorKind

_URL = re.compile(r"https?://\S+")
_QUOTED = re.compile(r"`[^`]{1,120}`|'[^'\s]{1,120}'|\"[^\"\s]{1,120}\"")
_ID = re.compile(r"\b(?:req|org|sess|msg|call|chatcmpl|run)[-_][A-Za-z0-9]+\b|\b[0-9a-f]{16,}\b")
_NUMBER = re.compile(r"\d[\d,._]*")
_MEMORY_KEY_LENGTH = 512
#: Words that carry no evidence of a kind (every error message has them).
STOP_WORDS = frozenset(
    "a an and api are as at be been by error errors exception for from has have http in is it "
    "its of on or our please the this that to was we were with you your".split()
)


def normalize(message: str) -> str:
    text = _URL.sub(" url ", message.lower())
    text = _ID.sub(" someid ", text)
    text = _QUOTED.sub(" somename ", text)
    return " ".join(_NUMBER.sub(" num ", text).split())


@dataclass(frozen=True)
class Guess:
    kind: ErrorKind
    confidence: float


class TextClassifier:
    """Online multinomial naive Bayes over normalised error messages, with abstention."""

    def __init__(
        self,
        *,
        threshold: float = 0.75,
        min_known_features: int = 2,
        alpha: float = 0.1,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.min_known_features = min_known_features
        self._vectorizer = feature_extraction.BagOfWords(
            lowercase=False, ngram_range=(1, 2), stop_words=set(STOP_WORDS)
        )
        self._model = naive_bayes.MultinomialNB(alpha=alpha)
        self._memory: dict[str, ErrorKind] = {}
        self.labels_learned = 0

    def learn(self, message: str, kind: ErrorKind) -> None:
        """Teach one labelled message."""
        text = normalize(message)
        if not text:
            raise ValueError("message has no text to learn from")
        self._memory[text[:_MEMORY_KEY_LENGTH]] = kind
        features = self._vectorizer.transform_one(text)
        if features:
            self._model.learn_one(features, kind.value)
        self.labels_learned += 1

    def predict(self, message: str) -> Guess | None:
        """The kind of ``message``, or ``None`` when the classifier has no grounds to say."""
        text = normalize(message)
        if not text:
            return None
        remembered = self._memory.get(text[:_MEMORY_KEY_LENGTH])
        if remembered is not None:
            return Guess(remembered, 1.0)
        features = self._vectorizer.transform_one(text)
        known = sum(1 for f in features if f in self._model.feature_counts)
        if known < self.min_known_features:
            return None
        probabilities = self._model.predict_proba_one(features)
        if not probabilities:
            return None
        label, confidence = max(probabilities.items(), key=lambda item: item[1])
        if confidence < self.threshold:
            return None
        return Guess(ErrorKind(label), confidence)
