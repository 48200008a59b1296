"""docs/metrics.md has a row for every Prometheus metric the code defines, of the metric's
type, and names no metric the code does not define.

The metrics are read from prometheus-client's default registry, where defining one registers
it, after importing every service's app and every module of libs/ and services/ that imports
prometheus_client (a definition needs it; importing these modules starts nothing).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, REGISTRY

ROOT = Path(__file__).resolve().parents[3]
METRICS_DOC = ROOT / "docs" / "metrics.md"
SOURCE_ROOTS = sorted([*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")])
SERVICES = ("auth", "ingest", "optimizer", "healer", "experiments")
#: prometheus-client's own collectors (process_*, python_*): registered by the library.
LIBRARY_COLLECTORS = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)
#: What the exposition adds to a family's name: a counter is exported (and spelt in the code)
#: with ``_total``; a histogram is queried through its series.
NAME_SUFFIX = {"counter": "_total", "info": "_info"}
SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}

#: A table row of the page: | `metric` | type | labels | meaning |
ROW = re.compile(r"^\| `(finops_[a-z0-9_]+)` \| (\w+) \|", re.MULTILINE)
METRIC_NAME = re.compile(r"\bfinops_[a-z0-9_]+")


def _modules_importing_prometheus() -> list[str]:
    modules = []
    for root in SOURCE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            if path.name == "__main__.py" or "prometheus_client" not in path.read_text():
                continue
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            modules.append(module.removesuffix(".__init__"))
    return modules


def _defined_metrics() -> dict[str, str]:
    """Every metric the platform's code defines, by its name as the code spells it, with its
    type (``counter``, ``gauge``, ``histogram``)."""
    for service in SERVICES:
        importlib.import_module(f"finops.{service}.app")
    for module in _modules_importing_prometheus():
        importlib.import_module(module)
    library = {family.name for c in LIBRARY_COLLECTORS for family in c.collect()}
    return {
        family.name + NAME_SUFFIX.get(family.type, ""): family.type
        for family in REGISTRY.collect()
        if family.name not in library
    }


def _undocumented(defined: dict[str, str], doc: str) -> dict[str, str]:
    """Metrics without a row, or whose row says another type: name -> what the row should say."""
    rows = dict(ROW.findall(doc))
    return {name: kind for name, kind in defined.items() if rows.get(name) != kind}


def _unknown(defined: dict[str, str], doc: str) -> set[str]:
    """``finops_…`` names in the page that are neither a defined metric nor one of its series."""
    series = set(defined)
    for name, kind in defined.items():
        series.update(name + suffix for suffix in SERIES_SUFFIXES.get(kind, ()))
    return set(METRIC_NAME.findall(doc)) - series


def test_every_metric_defined_in_the_code_has_a_row_of_its_type():
    defined = _defined_metrics()
    assert len(defined) >= 30, sorted(defined)  # the registry held the platform's metrics
    assert _undocumented(defined, METRICS_DOC.read_text()) == {}


def test_each_metric_has_one_row():
    names = [name for name, _ in ROW.findall(METRICS_DOC.read_text())]
    assert sorted(names) == sorted(set(names))


def test_every_metric_the_page_names_is_defined_in_the_code():
    assert _unknown(_defined_metrics(), METRICS_DOC.read_text()) == set()


def test_the_checks_would_catch_a_missing_row_a_wrong_type_and_a_misspelt_name():
    doc = METRICS_DOC.read_text()
    defined = _defined_metrics()
    [row] = [line for line in doc.splitlines() if line.startswith("| `finops_calls` |")]
    assert _undocumented(defined, doc.replace(row + "\n", "")) == {"finops_calls": "gauge"}
    retyped = doc.replace(row, row.replace("| gauge |", "| counter |"))
    assert _undocumented(defined, retyped) == {"finops_calls": "gauge"}
    misspelt = doc + "\n`finops_http_request_total`, `finops_gc_pause_seconds_bucket`\n"
    assert _unknown(defined, misspelt) == {"finops_http_request_total"}


def _help_texts() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, help text, label names) of every metric the platform's code defines."""
    _defined_metrics()  # imports every module that defines one
    library = set(LIBRARY_COLLECTORS)
    found = []
    for collector in list(REGISTRY._collector_to_names):
        if collector in library:
            continue
        metric: Any = collector
        if hasattr(metric, "_labelnames"):  # Counter, Gauge, Histogram
            found.append((metric._name, metric._documentation, tuple(metric._labelnames)))
        else:  # a custom collector (the optimizer's spend figures): its families say
            for family in metric.collect():
                found.append((family.name, family.documentation, tuple(family._labelnames)))
    return found


def _vague_help(name: str, text: str, labels: tuple[str, ...]) -> list[str]:
    """What the help text of a metric leaves unsaid: a label it does not name (its name, or
    with ``_`` read as a space), and for a ``…_timestamp_seconds`` gauge that it is a Unix
    time. A help text is what an operator reads next to the series in Prometheus or Grafana:
    "Records read" says neither what was read nor what ``topic`` and ``outcome`` split."""
    words = text.lower()
    missing = [
        f"label {label}"
        for label in labels
        if not any(
            re.search(rf"\b{re.escape(form)}\b", words) for form in (label, label.replace("_", " "))
        )
    ]
    if name.endswith("_timestamp_seconds") and "unix time" not in words:
        missing.append("Unix time")
    return missing


def test_every_help_text_names_the_metrics_labels_and_says_a_timestamp_is_unix_time():
    texts = _help_texts()
    assert len(texts) >= 30
    vague = {name: _vague_help(name, text, labels) for name, text, labels in texts}
    assert {name: what for name, what in vague.items() if what} == {}


def test_the_help_check_would_catch_a_vague_text():
    assert _vague_help("finops_x_total", "Records read", ("topic", "outcome")) == [
        "label topic",
        "label outcome",
    ]
    assert _vague_help("finops_x", "Last checkpoint time", ()) == []
    assert _vague_help("finops_x_timestamp_seconds", "Last checkpoint time", ()) == ["Unix time"]
    assert (
        _vague_help("finops_x_total", "by made_by and cost source", ("made_by", "cost_source"))
        == []
    )
    # a label named inside another word is not named
    assert _vague_help("finops_x_total", "Statements written", ("state",)) == ["label state"]
