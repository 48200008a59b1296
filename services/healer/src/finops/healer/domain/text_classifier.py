"""The learned part of classification: an online text classifier over error messages.

Messages no rule knows go here. It is river's multinomial naive Bayes over a bag of words and
word pairs, taught one label at a time (``POST /api/healing/labels``) and seeded with a few
generic phrasings per kind (:data:`SEED_LABELS`) so it is useful before anyone teaches it.

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

from finops.healer.domain.taxonomy import ErrorKind

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
        seed: bool = True,
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
        if seed:
            for message, kind in SEED_LABELS:
                self._learn_features(normalize(message), kind)

    def _learn_features(self, text: str, kind: ErrorKind) -> None:
        features = self._vectorizer.transform_one(text)
        if features:
            self._model.learn_one(features, kind.value)

    def learn(self, message: str, kind: ErrorKind) -> None:
        """Teach one labelled message."""
        text = normalize(message)
        if not text:
            raise ValueError("message has no text to learn from")
        self._memory[text[:_MEMORY_KEY_LENGTH]] = kind
        self._learn_features(text, kind)
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


K = ErrorKind
#: Generic phrasings per kind, written for this table (not copied from the test payloads).
SEED_LABELS: tuple[tuple[str, ErrorKind], ...] = (
    ("rate limit exceeded, slow down your requests", K.RATE_LIMIT),
    ("too many requests in a short period, try again later", K.RATE_LIMIT),
    ("requests per minute limit reached for this key", K.RATE_LIMIT),
    ("you are sending requests too quickly", K.RATE_LIMIT),
    ("your account has run out of credits, add funds to continue", K.QUOTA_EXHAUSTED),
    ("monthly quota used up, upgrade your plan", K.QUOTA_EXHAUSTED),
    ("billing limit reached for this organization", K.QUOTA_EXHAUSTED),
    ("the daily token budget for this project is exhausted", K.QUOTA_EXHAUSTED),
    ("the service is busy right now, please retry shortly", K.OVERLOADED),
    ("engine is currently overloaded with other requests", K.OVERLOADED),
    ("not enough capacity to serve this model at the moment", K.OVERLOADED),
    ("the backend is experiencing heavy load", K.OVERLOADED),
    ("internal error while processing the request", K.SERVER_ERROR),
    ("the upstream server returned an unexpected failure", K.SERVER_ERROR),
    ("something went wrong on our side, the failure has been logged", K.SERVER_ERROR),
    ("the request took too long and was cancelled", K.TIMEOUT),
    ("no response received before the deadline", K.TIMEOUT),
    ("operation did not complete within the allotted time", K.TIMEOUT),
    ("the connection was dropped before a response arrived", K.NETWORK),
    ("cannot reach the host, dns lookup failed", K.NETWORK),
    ("tls handshake failed while connecting to the api", K.NETWORK),
    ("the conversation has more tokens than the model can accept", K.CONTEXT_LENGTH_EXCEEDED),
    (
        "input exceeds the context window of the model, shorten the prompt",
        K.CONTEXT_LENGTH_EXCEEDED,
    ),
    ("too much text in the messages for this model, reduce the input", K.CONTEXT_LENGTH_EXCEEDED),
    ("the model returned text that is not valid json", K.INVALID_OUTPUT),
    ("could not parse the structured output of the model", K.INVALID_OUTPUT),
    ("tool call arguments from the model are malformed", K.INVALID_OUTPUT),
    ("the completion did not match the required schema", K.INVALID_OUTPUT),
    ("the request was refused by the safety filter", K.CONTENT_POLICY),
    ("this content violates the acceptable use policy", K.CONTENT_POLICY),
    ("the prompt was flagged by moderation", K.CONTENT_POLICY),
    ("the api key provided is not valid", K.AUTH),
    ("missing credentials for this request", K.AUTH),
    ("this key is not allowed to use this resource", K.AUTH),
    ("the parameter temperature must be between zero and two", K.BAD_REQUEST),
    ("unrecognized field in the request body", K.BAD_REQUEST),
    ("messages must alternate between user and assistant roles", K.BAD_REQUEST),
    ("the requested model does not exist", K.MODEL_NOT_FOUND),
    ("no deployment with this name in the resource", K.MODEL_NOT_FOUND),
    ("this model has been retired and is no longer served", K.MODEL_NOT_FOUND),
)
