"""The last simulation's result and timeline, kept in the stack's folder for ``finops report``.

``finops simulate`` (and ``finops demo``) write ``<FINOPS_DATA_DIR>/simulation/last-run.json``:
``{"result": <the --json object>, "timeline": <Timeline.as_json()>}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finops.cli.simulation.timeline import Timeline

LAST_RUN = Path("simulation") / "last-run.json"


@dataclass(frozen=True)
class LastRun:
    """A simulation's result (``finops simulate --json``'s object) and its timeline."""

    result: dict[str, Any]
    timeline: Timeline


def save(data_dir: Path, run: LastRun) -> Path:
    path = data_dir / LAST_RUN
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"result": run.result, "timeline": run.timeline.as_json()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(body), encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file
    return path


def load(data_dir: Path) -> LastRun | None:
    """The last run kept in ``data_dir``, or ``None`` when no simulation left one."""
    path = data_dir / LAST_RUN
    if not path.exists():
        return None
    body = json.loads(path.read_text(encoding="utf-8"))
    return LastRun(body["result"], Timeline.from_json(body["timeline"]))
