"""The HTML report opens in headless Chromium with every chart drawn (no network, no stack)."""

from __future__ import annotations

import pytest
from headless_chromium import painted_charts
from report_sample import offline_report

from finops.cli.report import page

pytestmark = pytest.mark.e2e

CHARTS = {"chart-spend", "chart-traffic", "chart-errors", "chart-breakers", "chart-experiments"}


def test_every_chart_of_the_report_is_laid_out_and_painted_in_headless_chromium(tmp_path):
    written = page.write(offline_report(), tmp_path / "reports")

    shot, charts = painted_charts(written, tmp_path)

    assert {c.id for c in charts} == CHARTS
    for chart in charts:
        assert chart.width > 600 and chart.height > 150, chart
        # axes, lines, bars and text: a blank or failed SVG paints (next to) nothing
        assert chart.painted_share > 0.02, chart
    assert shot.stat().st_size > 20_000
