"""`make bench`: run every benchmark script and write one table of figures, baselines, targets.

A script under ``bench/`` takes part when it declares ``QUICK_ARGS`` (see ``bench/_figures.py``
for the whole contract); the runner reads that declaration without importing the script, runs
each script in its own process with ``$BENCH_FIGURES`` pointing at a file of its own, and writes
``figures.json`` and ``figures.md`` into ``--out`` (default ``bench/out/``, git-ignored).

    .venv/bin/python bench/_runner.py [--quick [--jobs N]] [--only NAME ...] [--out DIR]
    .venv/bin/python bench/_runner.py --readme README.md   # paste bench/out/figures.md into it

``--quick`` runs every script with its ``QUICK_ARGS``: a smoke run, whose figures prove the
scripts run, not the platform's speed. It and ``--only`` write into ``bench/out/partial/``
unless ``--out`` says otherwise, so ``bench/out/figures.md`` is always a full run.
``--jobs N`` runs a quick run's scripts N at a time (their stacks mostly wait: for processes to
start and for consumer groups to form), the longest first by their ``QUICK_SECONDS`` (a script
that declares none is taken as the longest), so that a long one does not start last; a full
run takes them one by one, in name order, since scripts that share the cores would measure
each other.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _figures import FIGURES_FILE, Figure, Target

BENCH = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH / "out"
README_BLOCK = re.compile(
    r"(?P<open><!-- generated: make bench -->\n)(?P<body>.*?)(?P<close><!-- end generated -->)",
    re.DOTALL,
)


@dataclass(frozen=True)
class BenchScript:
    path: Path
    quick_args: list[str]
    #: about how long its smoke run takes (``QUICK_SECONDS``); ``None`` when not declared
    quick_seconds: float | None = None

    @property
    def name(self) -> str:
        return f"bench/{self.path.name}"


@dataclass(frozen=True)
class ScriptRun:
    script: str
    exit_code: int
    seconds: float
    figures: list[Figure]


def _declared(path: Path, name: str) -> tuple[bool, object]:
    """Whether the script assigns ``name`` at module level, and the literal it assigns."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == name and node.value:
            return True, ast.literal_eval(node.value)
    return False, None


def quick_args_of(path: Path) -> list[str] | None:
    """The script's ``QUICK_ARGS`` declaration, or ``None`` when it has none."""
    found, value = _declared(path, "QUICK_ARGS")
    if not found:
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValueError(f"{path}: QUICK_ARGS must be a list of strings")
    return value


def quick_seconds_of(path: Path) -> float | None:
    """The script's ``QUICK_SECONDS`` declaration, or ``None`` when it has none."""
    found, value = _declared(path, "QUICK_SECONDS")
    if not found:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{path}: QUICK_SECONDS must be a number of seconds")
    return float(value)


def discover(folder: Path = BENCH) -> tuple[list[BenchScript], list[Path]]:
    """The scripts that declare the contract, and the ones that do not."""
    scripts, others = [], []
    for path in sorted(folder.glob("[a-z]*.py")):
        quick = quick_args_of(path)
        if quick is None:
            others.append(path)
        else:
            scripts.append(BenchScript(path, quick, quick_seconds_of(path)))
    return scripts, others


def longest_first(scripts: list[BenchScript]) -> list[BenchScript]:
    """The order a quick run with ``--jobs`` starts them in: by ``QUICK_SECONDS``, longest
    first, the ones without it before all (unknown, so taken as the longest), else by name."""
    return sorted(
        scripts,
        key=lambda s: -(math.inf if s.quick_seconds is None else s.quick_seconds),
    )


def run_script(
    script: BenchScript, quick: bool, position: str, *, together: bool = False
) -> ScriptRun:
    """Run one script in its own process.

    Its progress goes to this terminal as it runs, or, when it runs ``together`` with other
    scripts, all at once when it ends (so that the scripts' lines do not interleave).
    """
    args = script.quick_args if quick else []
    heading = f"== [{position}] {script.name} {' '.join(args)}"
    if not together:
        print(heading, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="finops-bench-figures-") as tmp:
        figures_file = Path(tmp) / "figures.jsonl"
        path = os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH")) if p)
        # the benches read their stacks' /metrics without a token: one exported for a real
        # deployment would make every read a 401
        inherited = {k: v for k, v in os.environ.items() if k != "FINOPS_METRICS_TOKEN"}
        env = {**inherited, FIGURES_FILE: str(figures_file), "PYTHONPATH": path}
        started = time.monotonic()
        output = subprocess.PIPE if together else None
        done = subprocess.run(
            [sys.executable, str(script.path), *args],
            env=env,
            check=False,
            stdout=output,
            stderr=subprocess.STDOUT if together else None,
            text=True,
        )
        seconds = time.monotonic() - started
        lines = figures_file.read_text().splitlines() if figures_file.exists() else []
    figures = [Figure.from_json(json.loads(line)) for line in lines]
    ended = f"== {script.name}: exit {done.returncode}, {len(figures)} figures, {seconds:.0f} s"
    if together:
        print(f"{heading}\n{done.stdout}{ended}", file=sys.stderr, flush=True)
    else:
        print(ended, file=sys.stderr, flush=True)
    return ScriptRun(script.name, done.returncode, seconds, figures)


def run_all(scripts: list[BenchScript], quick: bool, jobs: int) -> tuple[list[ScriptRun], float]:
    """Every script, ``jobs`` at a time (the longest first: :func:`longest_first`), else one
    by one in their order; the runs in the scripts' order, and the highest 1-minute load
    average seen between scripts."""
    load_peak = os.getloadavg()[0]
    total = len(scripts)
    if jobs <= 1:
        runs = []
        for i, script in enumerate(scripts, 1):
            runs.append(run_script(script, quick, f"{i}/{total}"))
            load_peak = max(load_peak, os.getloadavg()[0])
        return runs, load_peak
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            script.path: pool.submit(run_script, script, quick, f"{i}/{total}", together=True)
            for i, script in enumerate(longest_first(scripts), 1)
        }
        runs = [futures[script.path].result() for script in scripts]
    return runs, max(load_peak, os.getloadavg()[0])


def machine_note(load_before: float, load_peak: float) -> str:
    """How busy the machine was: the 1-minute load average before the run and at its highest
    between scripts (the scripts' own load shows while they run, not between them)."""
    cores = os.cpu_count() or 1
    loaded = max(load_before, load_peak) >= 0.5 * cores
    state = "a loaded" if loaded else "an idle"
    return (
        f"{state} {cores}-core machine (1-minute load average {load_before:.1f} before the run, "
        f"up to {load_peak:.1f} between scripts"
        + ("; other work shared the cores, so figures are noisy" if loaded else "")
        + ")"
    )


def _number(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f} %"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _target(target: Target, unit: str) -> str:
    sign = "≥" if target.bound == "at least" else "≤"
    source = f" ({target.source})" if target.source else ""
    return f"{sign} {_number(target.value, unit)}{source}"


def render_markdown(runs: list[ScriptRun], started: datetime, note: str, quick: bool) -> str:
    kind = "smoke run (`--quick`): not the platform's speed" if quick else "full run"
    lines = [
        f"`make bench`, {kind}, {started:%Y-%m-%d %H:%M} UTC, on {note}.",
        "",
        "| script | figure | value | baseline, same run | target | |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.exit_code != 0:
            lines.append(f"| `{run.script}` | failed (exit {run.exit_code}) | | | | |")
        for f in run.figures:
            value = _number(f.figure.value, f.figure.unit)
            if f.detail:
                value += f" ({f.detail})"
            baseline = f"{f.baseline.label}: {_number(f.baseline.value, f.baseline.unit)}"
            status = "met" if f.met else "**missed**"
            lines.append(
                f"| `{f.script}.py` | {f.figure.label} | {value} | {baseline} | "
                f"{_target(f.target, f.figure.unit)} | {status} |"
            )
    return "\n".join(lines) + "\n"


def write_results(
    out: Path, runs: list[ScriptRun], started: datetime, note: str, quick: bool
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "started": started.isoformat(),
        "quick": quick,
        "machine": note,
        "scripts": [
            {"script": r.script, "exit_code": r.exit_code, "seconds": round(r.seconds, 1)}
            for r in runs
        ],
        "figures": [f.to_json() for r in runs for f in r.figures],
    }
    (out / "figures.json").write_text(json.dumps(document, indent=1) + "\n")
    (out / "figures.md").write_text(render_markdown(runs, started, note, quick))


def paste_into(readme: Path, table: Path) -> bool:
    """Replace the README's generated bench block with ``table``; ``False`` when unchanged."""
    if not table.exists():
        print(f"{table} does not exist yet: run `make bench` first", file=sys.stderr)
        return False
    text = readme.read_text(encoding="utf-8")
    block = table.read_text(encoding="utf-8")
    new = README_BLOCK.sub(lambda m: m["open"] + block + m["close"], text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: every QUICK_ARGS")
    parser.add_argument("--only", nargs="+", help="only scripts whose name contains one of these")
    parser.add_argument("--out", type=Path, help="folder of figures.json and figures.md")
    parser.add_argument("--readme", type=Path, help="paste bench/out/figures.md into this file")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="scripts run at once (default 1; more only for --quick: scripts that share the "
        "cores measure each other's load)",
    )
    args = parser.parse_args()
    if args.readme:
        paste_into(args.readme, (args.out or DEFAULT_OUT) / "figures.md")
        return 0

    # only a full run of every script lands where `make docs` takes the README's table from
    out = args.out or (DEFAULT_OUT / "partial" if args.quick or args.only else DEFAULT_OUT)
    scripts, others = discover()
    for path in others:
        print(f"not run: bench/{path.name} declares no QUICK_ARGS", file=sys.stderr)
    if args.only:
        scripts = [s for s in scripts if any(o in s.path.name for o in args.only)]
    if args.jobs > 1 and not args.quick:
        parser.error("--jobs above 1 is for --quick runs: a full run's figures need the cores")
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    runs, load_peak = run_all(scripts, args.quick, args.jobs)
    write_results(out, runs, started, machine_note(load_before, load_peak), args.quick)
    print(f"figures: {out / 'figures.md'} and {out / 'figures.json'}", file=sys.stderr)
    return 0 if all(r.exit_code == 0 and r.figures for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
