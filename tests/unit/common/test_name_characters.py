"""One rule for the characters no name may hold (`finops.common.name_characters`): every
control character (Cc), line and paragraph separator (Zl, Zp) and format character (Cf) of
Unicode, and nothing else that Unicode assigns. A bidi override or a zero-width space in a
name used to pass: only Cc and U+2028/U+2029 were refused."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from finops.common.name_characters import (
    NAME_CHARACTERS_MESSAGE,
    REFUSED_IN_NAMES,
    name_refusal,
    refused_character,
)

REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def test_the_rule_is_unicode_s_control_separator_and_format_characters() -> None:
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in REFUSED_CATEGORIES
        and not REFUSED_IN_NAMES.match(chr(code))
    ]
    # beyond them only code points this Python's Unicode has not assigned yet (the Egyptian
    # format controls of Unicode 15)
    extra = [
        f"U+{code:04X} {unicodedata.category(chr(code))}"
        for code in range(sys.maxunicode + 1)
        if REFUSED_IN_NAMES.match(chr(code))
        and unicodedata.category(chr(code)) not in REFUSED_CATEGORIES | {"Cn"}
    ]
    assert (missed, extra) == ([], [])


@pytest.mark.parametrize(
    "char",
    [
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u200e",  # left-to-right mark
        "\u200f",  # right-to-left mark
        "\u202a",  # left-to-right embedding
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\u2069",  # pop directional isolate
        "\u2060",  # word joiner
        "\ufeff",  # byte order mark
        "\u00ad",  # soft hyphen
        "\U000e0041",  # tag latin capital letter a
        "\n",
        "\x85",
        "\u2028",
    ],
)
def test_a_name_holding_a_format_control_or_separator_character_is_refused(char: str) -> None:
    assert refused_character(f"sum{char}marize") == char
    refusal = name_refusal(char)
    name = unicodedata.name(char, "")
    assert refusal == f"{NAME_CHARACTERS_MESSAGE}; got U+{ord(char):04X}" + (
        f" ({name})" if name else ""
    )


@pytest.mark.parametrize(
    "name",
    [
        "summarize",
        "résumé moins cher",
        "東京\u3000要約",  # an ideographic space
        "qa\u00a0x",  # a no-break space
        "gpt-4o 😀",
        "עברית",  # right-to-left letters (no override)
        "\ue000",  # private use
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: a ZWNJ between letters
        "\u0915\u094d\u200c\u0937",  # Devanagari: a ZWNJ after a virama
        "\u0915\u094d\u200d\u0937",  # Devanagari: a ZWJ after a virama
        "\u0628\u064e\u200c\u062a",  # Arabic: a mark between the letter and the ZWNJ
    ],
)
def test_a_name_of_any_script_and_spaces_is_kept(name: str) -> None:
    assert refused_character(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "sum\u200cmarize",  # between Latin letters it only makes two names look alike
        "sum\u200dmarize",
        "\U0001f469\u200d\U0001f4bb",  # an emoji sequence
        "\u200c\u0645",  # at an end
        "\u0645\u200c",
        "\u0645\u200d\u0645",  # a ZWJ between Arabic letters, no virama
        "\u0645\u200c1",  # a digit after it
    ],
)
def test_a_joiner_where_no_script_needs_it_is_refused(name: str) -> None:
    assert refused_character(name) in ("\u200c", "\u200d")
