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


class UnreadableRun(Exception):
    """The kept run's file is there but is not one :func:`save` wrote (cut short, edited)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def load(data_dir: Path) -> LastRun | None:
    """The last run kept in ``data_dir``, or ``None`` when no simulation left one; raises
    :class:`UnreadableRun` when the file cannot be read back."""
    path = data_dir / LAST_RUN
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableRun(path, f"not text ({exc.reason})") from exc
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise UnreadableRun(path, "no simulation result in it")
        return LastRun(body["result"], Timeline.from_json(body["timeline"]))
    except json.JSONDecodeError as exc:  # a ValueError: before it
        raise UnreadableRun(path, f"not JSON ({exc})") from exc
    except KeyError as exc:
        raise UnreadableRun(path, f"no {exc.args[0]!r} in it") from exc
    except (TypeError, ValueError, AttributeError) as exc:  # a timeline of the wrong shape
        raise UnreadableRun(path, f"the timeline is not one a simulation writes ({exc})") from exc
