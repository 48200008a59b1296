"""The README's topic table is the registry's: every topic, its partitions, how long the
broker keeps its records (or that it is compacted), and which topics have a dead-letter topic.

The table gave no retention at all: an operator sizing disks or planning how long a stream
service may stay down (`finops.experiment-events.v1` and `finops.provider-outcomes.v1` keep a
day; a service down longer resumes from the earliest offset left) had to read the code.
"""

from __future__ import annotations

from pathlib import Path

from finops.common.topics import ALL_TOPICS, DAY_MS, PRIMARY_TOPICS, TopicSpec, dlq_spec

ROOT = Path(__file__).resolve().parents[3]


def rows() -> dict[str, list[str]]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("\n## Topics\n") :].split("\n## ")[1]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:4] == ["topic", "partitions", "retention", "key"], header
    return {
        cells[0]: cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])
    }


def retention(spec: TopicSpec) -> str:
    if spec.cleanup_policy == "compact":
        return "compacted"
    assert spec.retention_ms is not None and spec.retention_ms % DAY_MS == 0
    days = spec.retention_ms // DAY_MS
    return f"{days} day" if days == 1 else f"{days} days"


def test_every_topic_of_the_registry_is_in_the_readme_with_its_partitions_and_retention():
    table = rows()
    assert set(table) - {"`<topic>.dlq`"} == {spec.name for spec in PRIMARY_TOPICS}
    for spec in PRIMARY_TOPICS:
        assert table[spec.name][1:3] == [str(spec.partitions), retention(spec)], spec.name


def test_the_readme_says_which_topics_have_a_dead_letter_topic_and_its_retention():
    dead_letters = {spec.name for spec in ALL_TOPICS if spec.name.endswith(".dlq")}
    without = sorted(spec.name for spec in PRIMARY_TOPICS if f"{spec.name}.dlq" not in dead_letters)
    row = rows()["`<topic>.dlq`"]
    [dlq] = {retention(dlq_spec(spec)) for spec in PRIMARY_TOPICS}
    assert row[1:3] == ["1", dlq]
    assert all(f"`{name}`" in row[-1] for name in without), (without, row[-1])
