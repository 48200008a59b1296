"""The optimizer settings that only one-worker learning reads say so in docs/settings.md.

compose.yaml and Kubernetes run partitioned learning, where FINOPS_CONSUMER_GROUP (the
groups are FINOPS_FORWARD_GROUP and FINOPS_OWNER_GROUP) and FINOPS_CHECKPOINT_EVERY_EVENTS
(each partition is checkpointed every FINOPS_CHECKPOINT_INTERVAL_S) are read by nothing: an
operator who set them saw no effect, and the table did not say why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def row(variable: str) -> str:
    text = (ROOT / "docs" / "settings.md").read_text()
    start = text.index("<!-- generated: settings of finops.optimizer.settings")
    section = text[start : text.index("<!-- end generated -->", start)]
    [line] = [line for line in section.splitlines() if line.startswith(f"| `{variable}` |")]
    return line


@pytest.mark.parametrize(
    ("variable", "partitioned"),
    [
        ("FINOPS_CONSUMER_GROUP", "FINOPS_FORWARD_GROUP"),
        ("FINOPS_CHECKPOINT_EVERY_EVENTS", "FINOPS_CHECKPOINT_INTERVAL_S"),
    ],
)
def test_a_setting_partitioned_learning_ignores_says_so_and_names_what_it_reads(
    variable: str, partitioned: str
) -> None:
    described = row(variable)
    assert "one worker only" in described
    assert f"`{partitioned}`" in described
