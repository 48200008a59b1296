"""Open an HTML page in headless Chromium and check that every chart on it was painted.

Chromium comes from `make chromium` (Debian's chromium-headless-shell unpacked into .tools/,
no system change). Two runs of the same page: ``--dump-dom`` with a script that writes each
chart's bounding box into the page, then ``--screenshot`` of the whole page; each box's
region of the screenshot must hold painted (non-background) pixels.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from html import unescape
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ROOT / ".tools" / "bin" / "chromium-headless-shell"
WIDTH = 1100
MEASURE = """<script>
const out = document.createElement('pre');
out.id = 'chart-boxes';
out.textContent = JSON.stringify({
  height: document.documentElement.scrollHeight,
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    const r = svg ? svg.getBoundingClientRect() : {x: 0, y: 0, width: 0, height: 0};
    return {id: f.id, x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height};
  })});
document.body.appendChild(out);
</script>"""


@dataclass(frozen=True)
class ChartBox:
    """Where a chart's <svg> was laid out, and how much of it was painted."""

    id: str
    x: float
    y: float
    width: float
    height: float
    painted_share: float = 0.0


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make chromium`"
    return subprocess.run(
        [str(CHROMIUM), "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HOME": str(ROOT / ".tools")},
    )


def layout(page: Path, work: Path) -> tuple[int, list[ChartBox]]:
    """(the page's height, each chart's box) as Chromium laid the page out."""
    measured = work / "measured.html"
    html = page.read_text(encoding="utf-8")
    measured.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    run = _chromium(f"--window-size={WIDTH},900", "--dump-dom", measured.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="chart-boxes">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page's script did not run: {run.stdout[-500:]}"
    body = json.loads(unescape(found.group(1)))
    return int(body["height"]), [ChartBox(**c) for c in body["charts"]]


def screenshot(page: Path, out: Path, height: int) -> Path:
    run = _chromium(f"--window-size={WIDTH},{height}", f"--screenshot={out}", page.as_uri())
    assert run.returncode == 0 and out.exists(), run.stderr[-2000:]
    return out


def painted_charts(page: Path, work: Path) -> tuple[Path, list[ChartBox]]:
    """Screenshot of the page and each chart with the share of its box that is painted."""
    height, boxes = layout(page, work)
    shot = screenshot(page, work / "report.png", height)
    image = Image.open(shot).convert("L")
    measured = []
    for box in boxes:
        region = image.crop(
            (int(box.x), int(box.y), int(box.x + box.width), int(box.y + box.height))
        )
        pixels = list(region.getdata())
        painted = sum(1 for p in pixels if p < 200) / max(1, len(pixels))
        measured.append(
            ChartBox(box.id, box.x, box.y, box.width, box.height, painted_share=painted)
        )
    return shot, measured
