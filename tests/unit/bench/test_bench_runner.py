"""`make bench`'s runner (bench/_runner.py) over small scripts that keep the contract."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from _figures import Measurement, at_least, at_most  # noqa: E402
from _runner import (  # noqa: E402
    discover,
    longest_first,
    machine_note,
    paste_into,
    quick_args_of,
    quick_seconds_of,
    render_markdown,
    run_all,
    run_script,
    write_results,
)

RECORDING_SCRIPT = """
import sys
from _figures import Measurement, at_least, at_most, record

QUICK_ARGS = ["--rate", "10"]

rate = float(sys.argv[sys.argv.index("--rate") + 1]) if "--rate" in sys.argv else 1000.0
record(
    Measurement("requests", rate, "req/s"),
    Measurement("healthz", 2 * rate, "req/s"),
    at_least(100, "#4"),
)
record(Measurement("p99", 3.0, "ms"), Measurement("healthz p99", 1.0, "ms"), at_most(10))
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_only_scripts_that_declare_quick_args_take_part(tmp_path):
    write(tmp_path, "speed.py", RECORDING_SCRIPT)
    write(tmp_path, "legacy.py", "print('figures, printed only')\n")
    write(tmp_path, "_helper.py", "QUICK_ARGS = []\n")
    scripts, others = discover(tmp_path)
    assert [(s.name, s.quick_args) for s in scripts] == [("bench/speed.py", ["--rate", "10"])]
    assert others == [tmp_path / "legacy.py"]


def test_quick_args_must_be_a_list_of_strings(tmp_path):
    bad = write(tmp_path, "bad.py", "QUICK_ARGS = ['--events', 10]\n")
    with pytest.raises(ValueError, match="QUICK_ARGS must be a list of strings"):
        quick_args_of(bad)
    annotated = write(tmp_path, "typed.py", "QUICK_ARGS: list[str] = ['--quick']\n")
    assert quick_args_of(annotated) == ["--quick"]


def test_a_quick_run_in_parallel_starts_the_longest_scripts_first(tmp_path, capsys):
    write(tmp_path, "a_short.py", "QUICK_ARGS = []\nQUICK_SECONDS = 2\n")
    write(tmp_path, "b_long.py", "QUICK_ARGS = []\nQUICK_SECONDS = 40.5\n")
    write(tmp_path, "c_unknown.py", "QUICK_ARGS = []\n")
    write(tmp_path, "d_middle.py", "QUICK_ARGS = []\nQUICK_SECONDS = 9\n")
    scripts, _ = discover(tmp_path)
    assert [s.quick_seconds for s in scripts] == [2.0, 40.5, None, 9.0]
    # unknown is taken as the longest
    order = ["c_unknown.py", "b_long.py", "d_middle.py", "a_short.py"]
    assert [s.path.name for s in longest_first(scripts)] == order
    runs, _ = run_all(scripts, quick=True, jobs=2)
    # the runs come back in the scripts' order; they started longest first
    assert [r.script for r in runs] == [s.name for s in scripts]
    err = capsys.readouterr().err
    for position, name in enumerate(order, 1):
        assert f"== [{position}/4] bench/{name}" in err


def test_quick_seconds_must_be_a_number(tmp_path):
    assert quick_seconds_of(write(tmp_path, "none.py", "QUICK_ARGS = []\n")) is None
    for bad in ("'30'", "True", "-1"):
        path = write(tmp_path, "bad.py", f"QUICK_ARGS = []\nQUICK_SECONDS = {bad}\n")
        with pytest.raises(ValueError, match="QUICK_SECONDS must be a number of seconds"):
            quick_seconds_of(path)


@pytest.mark.parametrize(("quick", "rate", "met"), [(True, 10.0, False), (False, 1000.0, True)])
def test_a_run_collects_each_figure_with_its_baseline_and_target(tmp_path, quick, rate, met):
    write(tmp_path, "speed.py", RECORDING_SCRIPT)
    (script,), _ = discover(tmp_path)
    run = run_script(script, quick=quick, position="1/1")
    assert (run.script, run.exit_code) == ("bench/speed.py", 0)
    requests, p99 = run.figures
    assert requests.figure == Measurement("requests", rate, "req/s")
    assert requests.baseline == Measurement("healthz", 2 * rate, "req/s")
    assert (requests.target, requests.met) == (at_least(100, "#4"), met)
    assert (p99.target, p99.met) == (at_most(10), True)


def test_the_table_and_the_json_hold_every_figure_and_a_failed_script(tmp_path):
    write(tmp_path, "speed.py", RECORDING_SCRIPT)
    write(tmp_path, "broken.py", "QUICK_ARGS = []\nraise SystemExit(3)\n")
    scripts, _ = discover(tmp_path)
    runs = [run_script(s, quick=True, position="-") for s in scripts]
    started = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    write_results(tmp_path / "out", runs, started, "a loaded 2-core machine", quick=True)
    document = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert [(s["script"], s["exit_code"]) for s in document["scripts"]] == [
        ("bench/broken.py", 3),
        ("bench/speed.py", 0),
    ]
    assert [(f["figure"]["label"], f["met"]) for f in document["figures"]] == [
        ("requests", False),
        ("p99", True),
    ]
    table = (tmp_path / "out" / "figures.md").read_text().splitlines()
    assert "a loaded 2-core machine" in table[0] and "--quick" in table[0]
    assert table[4] == "| `bench/broken.py` | failed (exit 3) | | | | |"
    assert table[5] == (
        "| `speed.py` | requests | 10 req/s | healthz: 20 req/s | ≥ 100 req/s (#4) | **missed** |"
    )
    assert table[6] == "| `speed.py` | p99 | 3 ms | healthz p99: 1 ms | ≤ 10 ms | met |"


def test_the_readme_block_is_replaced_by_the_last_full_run(tmp_path):
    readme = write(
        tmp_path,
        "README.md",
        "# x\n<!-- generated: make bench -->\nold\n<!-- end generated -->\ntail\n",
    )
    runs = []
    started = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert not paste_into(readme, tmp_path / "missing.md")
    table = tmp_path / "figures.md"
    table.write_text(render_markdown(runs, started, "an idle 2-core machine", quick=False))
    assert paste_into(readme, table)
    text = readme.read_text()
    assert "old" not in text
    assert text.startswith(
        "# x\n<!-- generated: make bench -->\n`make bench`, full run, 2026-12-02"
    )
    assert text.endswith("|---|---|---|---|---|---|\n<!-- end generated -->\ntail\n")


def test_the_note_says_loaded_when_the_load_was_high_before_or_during_the_run():
    cores = os.cpu_count() or 1
    assert machine_note(0.0, 0.0).startswith(f"an idle {cores}-core machine")
    busy = machine_note(0.0, float(cores))
    assert busy.startswith(f"a loaded {cores}-core machine")
    assert busy.endswith("other work shared the cores, so figures are noisy)")
