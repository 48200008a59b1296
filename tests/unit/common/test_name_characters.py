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
    ],
)
def test_a_name_of_any_script_and_spaces_is_kept(name: str) -> None:
    assert refused_character(name) is None
