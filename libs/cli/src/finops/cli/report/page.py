"""The report as one self-contained HTML page: styles and SVG charts inline, no network."""

from __future__ import annotations

from html import escape
from pathlib import Path

from finops.cli.report.charts import Chart, draw_all
from finops.cli.report.model import ExperimentRow, Figure, Report

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 960px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.source { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 12px 0 24px; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; }
td.value { font-weight: 600; white-space: nowrap; }
figure.chart { margin: 0 0 28px; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-weight: 600; margin-bottom: 6px; }
"""


def _figures_table(figures: list[Figure]) -> str:
    rows = "".join(
        f"<tr><th>{escape(f.label)}</th><td class='value'>{escape(f.value)}</td>"
        f"<td>{escape(f.note)}</td></tr>"
        for f in figures
    )
    return f"<table class='summary'>{rows}</table>"


def _promoted(row: ExperimentRow) -> str:
    if row.pin_lifted:
        return "yes, then unpinned by a drift"
    if row.promoted and row.pinned_at_end is False:
        return "yes, not recommended at the end"
    return "yes" if row.promoted else "no"


def _experiments_table(experiments: list[ExperimentRow]) -> str:
    if not experiments:
        return "<p>No experiment ran.</p>"
    head = "<tr><th>experiment</th><th>kind</th><th>decision</th><th>winner</th>"
    head += "<th>promoted</th><th>samples per variant</th><th>of them after a fallback</th>"
    head += "<th>why</th></tr>"
    rows = "".join(
        f"<tr><td>{escape(e.name)}</td><td>{escape(e.kind)}</td><td>{escape(e.decision)}</td>"
        f"<td>{escape(e.winner or '-')}</td><td>{_promoted(e)}</td>"
        f"<td>{escape(' / '.join(str(n) for n in e.samples) or '-')}</td>"
        f"<td>{escape(' / '.join(str(n) for n in e.fallbacks) or '-')}</td>"
        f"<td>{escape(e.reason or '-')}</td></tr>"
        for e in experiments
    )
    return f"<table class='experiments'>{head}{rows}</table>"


def _chart(chart: Chart) -> str:
    return (
        f"<figure class='chart' id='chart-{chart.id}'>"
        f"<figcaption>{escape(chart.caption)}</figcaption>{chart.svg}</figure>"
    )


def render(report: Report) -> str:
    """The page's HTML."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f"<p class='source'>{escape(report.source)} · generated "
        f"{report.generated_at:%Y-%m-%d %H:%M:%S %Z}</p>",
        "<h2>Summary</h2>",
        _figures_table(report.summary),
        "<h2>Experiments</h2>",
        _experiments_table(report.experiments),
    ]
    if report.platform:
        parts += ["<h2>The platform now</h2>", _figures_table(report.platform)]
    parts.append("<h2>Over the run</h2>")
    parts += [_chart(c) for c in draw_all(report.timeline)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write(report: Report, folder: Path, out: Path | None = None) -> Path:
    """Write the page to ``out``, or to ``folder/finops-report-<UTC time>.html``, making
    ``folder`` but no folder above it."""
    if out is None:
        folder.mkdir(exist_ok=True)
        out = folder / f"finops-report-{report.generated_at:%Y%m%d-%H%M%S}.html"
    out.write_text(render(report), encoding="utf-8")
    return out
