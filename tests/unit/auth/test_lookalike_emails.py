"""Lookalike email addresses (letters of two scripts that look alike) are flagged for admins."""

from __future__ import annotations

import pytest

from finops.auth.domain.policy import email_warnings

CYRILLIC_A, CYRILLIC_E, GREEK_O = "\u0430", "\u0435", "\u03bf"


@pytest.mark.parametrize(
    ("email", "part", "scripts"),
    [
        (f"{CYRILLIC_A}lice@example.com", f"{CYRILLIC_A}lice", ["Cyrillic", "Latin"]),
        (f"alice@{CYRILLIC_E}xample.com", f"{CYRILLIC_E}xample", ["Cyrillic", "Latin"]),
        (f"b{GREEK_O}b@example.com", f"b{GREEK_O}b", ["Greek", "Latin"]),
    ],
)
def test_a_part_mixing_lookalike_scripts_is_flagged(email, part, scripts):
    [warning] = email_warnings(email)
    assert warning["code"] == "email_mixed_scripts"
    assert warning["part"] == part
    assert warning["scripts"] == scripts
    assert "look alike" in warning["message"]


@pytest.mark.parametrize(
    "email",
    [
        "alice@example.com",
        "bob-smith_1@mail.example.co.uk",
        # All Cyrillic, then a Latin name at a Cyrillic domain.
        "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
        "alice@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
        "jos\u00e9@example.com",
    ],
)
def test_single_script_parts_are_not_flagged(email):
    assert email_warnings(email) == []
