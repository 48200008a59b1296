"""How a rule of the table is matched: provider families, ids, patterns on lower-cased text.

Pure: no I/O. The table itself is :mod:`finops.common.provider_errors.rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError

#: Provider names agents use → the family a rule names.
PROVIDER_FAMILIES = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azureopenai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google-gemini": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google-vertex": "google",
    "bedrock": "bedrock",
    "aws": "bedrock",
    "aws-bedrock": "bedrock",
    "amazon-bedrock": "bedrock",
    "mistral": "mistral",
    "mistralai": "mistral",
}


def provider_family(provider: str | None) -> str | None:
    if not provider:
        return None
    return PROVIDER_FAMILIES.get(provider.strip().lower().replace(" ", "-"))


def idset(*names: str) -> frozenset[str]:
    """Provider error types or codes, lower-cased; an argument may hold several (by spaces)."""
    return frozenset(n.lower() for group in names for n in group.split())


_LETTER_OUTSIDE_ESCAPE = re.compile(r"(\\.)|([A-Z])")


def pattern(pattern: str) -> re.Pattern[str]:
    """A message or id pattern, matched against lower-cased text (cheaper than IGNORECASE):
    letters are lower-cased except in escapes such as ``\\S`` or ``\\b``."""
    return re.compile(
        _LETTER_OUTSIDE_ESCAPE.sub(lambda m: m.group(1) or m.group(2).lower(), pattern)
    )


def header_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: ErrorKind
    source: str
    providers: frozenset[str] = frozenset()  # families; empty = any provider
    statuses: frozenset[int] = frozenset()  # empty = any status, or none
    ids: frozenset[str] = frozenset()  # provider error type or code, lower-case
    id_pattern: re.Pattern[str] | None = None
    message: re.Pattern[str] | None = None
    header: tuple[str, re.Pattern[str]] | None = None  # (lower-case name, value regex)

    def matches(
        self, error: ProviderError, family: str | None, ids: tuple[str, ...], message: str
    ) -> bool:
        """``ids`` and ``message`` are the error's, lower-cased."""
        if self.providers and family not in self.providers:
            return False
        if self.statuses and error.status not in self.statuses:
            return False
        if self.ids and not any(i in self.ids for i in ids):
            return False
        if self.id_pattern and not any(self.id_pattern.search(i) for i in ids):
            return False
        if self.message and not self.message.search(message):
            return False
        if self.header:
            name, pattern = self.header
            value = error.headers.get(name)
            if value is None or not pattern.search(value):
                return False
        return True


def error_ids(error: ProviderError) -> tuple[str, ...]:
    return tuple(i.lower() for i in (error.error_type, error.error_code) if i)


def first_match(rules: tuple[Rule, ...], error: ProviderError) -> Rule | None:
    family = provider_family(error.provider)
    ids = error_ids(error)
    message = error.message.lower()
    return next((rule for rule in rules if rule.matches(error, family, ids, message)), None)
