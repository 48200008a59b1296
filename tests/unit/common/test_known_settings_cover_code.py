"""Every ``FINOPS_`` variable the code names is a known setting: one read outside the settings
classes (``os.environ``) and missing from ``OTHER_VARIABLES`` would have every service warn
at start-up that it "is not a setting" while it is read."""

from __future__ import annotations

import re
from pathlib import Path

from finops.common.settings import known_settings

ROOT = Path(__file__).resolve().parents[3]
#: names written as examples of a misspelling or of a placeholder, not read
EXAMPLES = {"FINOPS_A", "FINOPS_KAFKA_ACK", "FINOPS_OPTIMZER_WORKERS"}
NAME = re.compile(r"\bFINOPS_[A-Z0-9_]*[A-Z0-9]\b")


def named_in_code() -> dict[str, str]:
    names: dict[str, str] = {}
    sources = [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    for path in sources:
        if path.name == "known_settings.py":
            continue
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            names.setdefault(name, str(path.relative_to(ROOT)))
    return names


def test_every_finops_variable_the_code_names_is_known() -> None:
    names = named_in_code()
    assert len(names) > 50  # the scan found the code
    unknown = {n: where for n, where in names.items() if n not in known_settings()}
    assert {n: where for n, where in unknown.items() if n not in EXAMPLES} == {}


def test_the_check_would_catch_a_variable_read_outside_the_settings() -> None:
    assert NAME.findall('os.environ.get("FINOPS_NEW_KNOB", "")') == ["FINOPS_NEW_KNOB"]
    assert "FINOPS_NEW_KNOB" not in known_settings()
