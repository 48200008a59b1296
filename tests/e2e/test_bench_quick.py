"""`make bench --quick`: every script under bench/ runs and gives every figure a baseline and a
target. A smoke run: the figures of a loaded machine are not asserted, only their presence and
that each is a measurement: above zero (but a share, which can be 0 %), and an events/s figure
read over at least two steps of progress (a counter seen at 0 and then at the end gave
"0 events/s", and records fetched at once were "read" at millions a second); and a latency
figure is of requests that all succeeded (the healer's advice p99 once measured 403s)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _rates import MIN_SAMPLES  # noqa: E402
from _runner import discover  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_quick_run_gives_every_script_figures_with_baselines_and_targets(tmp_path):
    scripts, _ = discover()
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "_runner.py"),
            "--quick",
            "--jobs",
            "3",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert done.returncode == 0, _failed_scripts(done.stderr)
    document = json.loads((tmp_path / "figures.json").read_text())
    assert document["quick"] is True
    assert [(s["script"], s["exit_code"]) for s in document["scripts"]] == [
        (s.name, 0) for s in scripts
    ]
    by_script: dict[str, int] = {}
    for f in document["figures"]:
        by_script[f["script"]] = by_script.get(f["script"], 0) + 1
        for measured in (f["figure"], f["baseline"]):
            assert measured["label"] and math.isfinite(measured["value"]), f
            assert measured["unit"] == "%" or measured["value"] > 0, f
            if measured["unit"] == "events/s":
                assert measured["samples"] is not None, f
            if measured.get("samples") is not None:
                assert measured["samples"] >= MIN_SAMPLES, f
        assert f["target"]["bound"] in ("at least", "at most"), f
        bound = f["target"]["value"]
        value = f["figure"]["value"]
        assert f["met"] == (
            value >= bound if f["target"]["bound"] == "at least" else value <= bound
        )
    assert sorted(f"bench/{name}.py" for name in by_script) == sorted(s.name for s in scripts)
    rows = [line for line in (tmp_path / "figures.md").read_text().splitlines() if "| `" in line]
    assert len(rows) == len(document["figures"])
    assert all(row.rstrip(" |").endswith(("met", "**missed**")) for row in rows)


def _failed_scripts(stderr: str) -> str:
    """Every script's exit line, and the last lines of each one that did not exit 0 (the
    runner prints a script's output above its exit line)."""
    lines = stderr.splitlines()
    shown = [line for line in lines if line.startswith("== bench/") and ": exit" in line]
    for i, line in enumerate(lines):
        if line.startswith("== bench/") and ": exit" in line and ": exit 0," not in line:
            shown += ["", *lines[max(i - 40, 0) : i + 1]]
    return "\n".join(shown) or stderr[-3000:]
