from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from finops.common.provider_errors.matching import PROVIDER_FAMILIES, provider_family
from finops.common.provider_errors.rules import RULES, SPECIFIC_RULES
from finops.common.provider_errors.status_rules import STATUS_RULES
from finops.common.provider_errors.taxonomy import RETRYABLE_KINDS, ErrorKind, ProviderError
from finops.healer.domain.classify import CLASSIFIER, HINT, NO_RULE, ErrorClassifier, classify
from finops.healer.domain.text_classifier import TextClassifier, normalize

K = ErrorKind


# ---------------------------------------------------------------- the rules table
def test_every_rule_names_its_source_and_has_a_unique_name() -> None:
    assert all(rule.source.startswith("https://") for rule in RULES)
    assert len({rule.name for rule in RULES}) == len(RULES)


def test_every_kind_has_a_specific_rule_and_unknown_only_the_agents_own_ending() -> None:
    assert {rule.kind for rule in SPECIFIC_RULES} == set(ErrorKind)
    assert [r.name for r in SPECIFIC_RULES if r.kind is K.UNKNOWN] == ["ended_by_the_agent"]


@pytest.mark.parametrize(
    "message",
    ["asyncio.exceptions.CancelledError: ", "builtins.KeyboardInterrupt: "],
)
def test_a_call_the_agent_ended_is_no_provider_fault_even_where_a_classifier_says_timeout(
    message,
) -> None:
    # the SDK's give-up of a call cancelled during its first attempt: a learned classifier
    # taught "cancelled" reads as a timeout must not make it one (breakers count timeouts)
    class SaysTimeout:
        def predict(self, text: str) -> Any:
            return SimpleNamespace(kind=K.TIMEOUT)

    verdict = classify(ProviderError(message=message), learned=SaysTimeout())  # type: ignore[arg-type]
    assert (verdict.kind, verdict.rule) == (K.UNKNOWN, "ended_by_the_agent")


def test_status_rules_look_at_the_status_only() -> None:
    for rule in STATUS_RULES:
        assert rule.statuses and not (rule.ids or rule.message or rule.header or rule.providers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, K.AUTH), (402, K.QUOTA_EXHAUSTED), (403, K.AUTH), (404, K.MODEL_NOT_FOUND),
     (408, K.TIMEOUT), (413, K.CONTEXT_LENGTH_EXCEEDED), (418, K.BAD_REQUEST), (422, K.BAD_REQUEST),
     (429, K.RATE_LIMIT), (500, K.SERVER_ERROR), (502, K.SERVER_ERROR), (503, K.OVERLOADED),
     (504, K.TIMEOUT), (529, K.OVERLOADED)],
)  # fmt: skip
def test_a_bare_status_decides_when_nothing_else_does(status: int, kind: ErrorKind) -> None:
    assert classify(ProviderError(status=status)).kind is kind


def test_provider_names_map_to_families() -> None:
    assert provider_family("Azure_OpenAI") == "azure"
    assert provider_family("vertex_ai") == "google"
    assert provider_family("groq") is None and provider_family(None) is None
    assert set(PROVIDER_FAMILIES.values()) == {
        "openai", "azure", "anthropic", "google", "bedrock", "mistral",
    }  # fmt: skip


def test_retryable_kinds_are_the_transient_ones() -> None:
    assert RETRYABLE_KINDS == {K.RATE_LIMIT, K.OVERLOADED, K.SERVER_ERROR, K.TIMEOUT, K.NETWORK}


# ---------------------------------------------------------------- rule, classifier, hint, status
def test_a_specific_rule_beats_the_classifier_and_the_hint() -> None:
    taught = ErrorClassifier(TextClassifier())
    taught.teach("Overloaded", K.SERVER_ERROR)
    verdict = taught.classify(
        ProviderError(message="Overloaded", error_type="overloaded_error", status=529), K.TIMEOUT
    )
    assert (verdict.kind, verdict.rule) == (K.OVERLOADED, "overloaded_code")


def test_the_classifier_beats_the_hint_and_the_status() -> None:
    taught = ErrorClassifier(TextClassifier())
    taught.teach("the flux capacitor lost sync with the tachyon relay", K.SERVER_ERROR)
    error = ProviderError(message="the flux capacitor lost sync with the tachyon relay", status=400)
    verdict = taught.classify(error, K.BAD_REQUEST)
    assert (verdict.kind, verdict.rule) == (K.SERVER_ERROR, CLASSIFIER)


def test_the_hint_beats_a_bare_status() -> None:
    verdict = classify(ProviderError(message="zxqv wubble", status=400), K.INVALID_OUTPUT)
    assert (verdict.kind, verdict.rule) == (K.INVALID_OUTPUT, HINT)


def test_an_unknown_hint_is_no_hint() -> None:
    verdict = classify(ProviderError(message="zxqv wubble", status=503), K.UNKNOWN)
    assert (verdict.kind, verdict.rule) == (K.OVERLOADED, "status_503")


def test_nothing_to_go_on_is_unknown() -> None:
    verdict = classify(ProviderError(message="zxqv wubble"))
    assert (verdict.kind, verdict.rule, verdict.stated_wait_ms, verdict.retryable) == (
        K.UNKNOWN,
        NO_RULE,
        None,
        False,
    )


def test_classification_carries_the_stated_wait_and_retryability() -> None:
    error = ProviderError(
        status=429,
        message="slow down",
        headers={"retry-after": "Tue, 26 Mar 2024 20:00:09 GMT"},
    )
    verdict = classify(error, now=datetime(2024, 3, 26, 20, 0, 0, tzinfo=UTC))
    assert (verdict.kind, verdict.stated_wait_ms, verdict.retryable) == (K.RATE_LIMIT, 9000, True)


def test_rule_for_names_the_rule_that_overrides_any_label() -> None:
    classifier = ErrorClassifier(TextClassifier())
    assert classifier.rule_for(ProviderError(message="prompt is too long: 3 > 2")) == (
        "context_length_message"
    )
    assert classifier.rule_for(ProviderError(message="zxqv wubble", status=400)) is None


# ---------------------------------------------------------------- the text classifier
def test_normalisation_masks_what_varies_between_occurrences() -> None:
    a = normalize("Limit 30000, Used 29937 in org-uOtiSEwv for `gpt-4o` see https://x.y/z")
    b = normalize("Limit 10000, Used 8554 in org-AbCdEf12 for `gpt-4.1` see https://a.b/c")
    assert a == b == "limit num used num in someid for somename see url"


def test_a_taught_message_is_answered_from_memory_and_relabelling_takes_effect() -> None:
    text = TextClassifier()
    text.learn("Widget sprocket jammed at stage 4", K.SERVER_ERROR)
    assert text.predict("Widget sprocket jammed at stage 9").kind is K.SERVER_ERROR  # type: ignore[union-attr]
    text.learn("Widget sprocket jammed at stage 4", K.OVERLOADED)
    guess = text.predict("widget sprocket jammed at stage 7")
    assert guess is not None and (guess.kind, guess.confidence) == (K.OVERLOADED, 1.0)
    assert text.labels_learned == 2


def test_taught_vocabulary_generalises_to_new_wordings() -> None:
    text = TextClassifier()
    for message in (
        "upstream llama shard evicted the session cache",
        "llama shard evicted, session cache lost",
        "session cache evicted by llama shard rebalancing",
    ):
        text.learn(message, K.OVERLOADED)
    guess = text.predict("the llama shard evicted our session cache again")
    assert guess is not None and guess.kind is K.OVERLOADED and guess.confidence >= text.threshold


def test_the_classifier_abstains_on_unfamiliar_text() -> None:
    text = TextClassifier()
    text.learn("the request took too long and was cancelled", K.TIMEOUT)
    text.learn("the upstream returned a malformed reply", K.SERVER_ERROR)
    assert text.predict("zxqv wubble frobnicate") is None
    assert text.predict("Request was aborted.") is None  # one shared word is no evidence
    assert text.predict("") is None


def test_an_untaught_classifier_knows_nothing() -> None:
    text = TextClassifier()
    assert text.predict("the api key provided is not valid") is None
    assert text.labels_learned == 0


def test_learning_an_empty_message_is_refused() -> None:
    with pytest.raises(ValueError, match="no text"):
        TextClassifier().learn("   ", K.AUTH)
    with pytest.raises(ValueError, match="threshold"):
        TextClassifier(threshold=0)


# ---------------------------------------------------------------- remembered verdicts
def test_a_remembered_verdict_still_reads_each_errors_own_wait() -> None:
    classifier = ErrorClassifier()
    first = ProviderError("Overloaded", 529, "anthropic", headers={"retry-after": "2"})
    again = ProviderError("Overloaded", 529, "anthropic", headers={"retry-after": "30"})
    assert classifier.classify(first).stated_wait_ms == 2_000
    verdict = classifier.classify(again)
    assert len(classifier.remembered) == 1  # the second error hit the remembered verdict
    assert (verdict.kind, verdict.stated_wait_ms) == (K.OVERLOADED, 30_000)


def test_a_taught_label_replaces_a_remembered_verdict() -> None:
    classifier = ErrorClassifier()
    error = ProviderError("gremlin flux capacitor misaligned", 400, "acme")
    assert classifier.classify(error).kind is K.BAD_REQUEST  # the status alone decided
    classifier.teach("gremlin flux capacitor misaligned", K.OVERLOADED)
    verdict = classifier.classify(error)
    assert (verdict.kind, verdict.rule) == (K.OVERLOADED, CLASSIFIER)


def test_the_hint_and_the_headers_rules_read_are_part_of_what_is_remembered() -> None:
    classifier = ErrorClassifier()
    error = ProviderError("something odd", 418, "acme")
    assert classifier.classify(error, K.TIMEOUT).kind is K.TIMEOUT
    assert classifier.classify(error, K.NETWORK).kind is K.NETWORK
    assert len(classifier.remembered) == 2
