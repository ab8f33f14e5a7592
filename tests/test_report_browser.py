"""`report --html` in a real headless Chromium at desktop (1280 px) and phone (390 px) width: no
console error, nothing fetched, no sideways scrolling, no text under 10 px, every published
number drawn where it belongs and every suppressed one shown as suppressed, never drawn.

REPORT_SCREENSHOT=docs/operator-report.png python -m pytest tests/test_report_browser.py
refreshes the picture docs/operator.md shows."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from send_metrics.operator import report, report_html, report_text
from tests.browser import Browser
from tests.team_events import in_duckdb, team

SCREENSHOT = (
    Path(os.environ["REPORT_SCREENSHOT"]).resolve() if "REPORT_SCREENSHOT" in os.environ else None
)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

READ_PAGE = """JSON.stringify({
  ready: document.body.dataset.ready,
  pageWidth: document.documentElement.scrollWidth,
  smallest: Math.min(...[...document.querySelectorAll('body *')].filter(e =>
      [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) &&
      e.getClientRects().length).map(e => {
    const size = parseFloat(getComputedStyle(e).fontSize);
    return e instanceof SVGElement ? size * e.getScreenCTM().a : size;
  })),
  charts: [...document.querySelectorAll('#durations .small')].map(d => ({
    command: d.dataset.command,
    points: [...d.querySelectorAll('circle.point')].map(c =>
      [c.dataset.week, Number(c.dataset.p50Ms), Number(c.dataset.p90Ms),
       Number(c.dataset.regression)]),
    hidden: [...d.querySelectorAll('.suppressed-week')].map(r => r.dataset.week),
    lines: d.querySelectorAll('polyline').length,
  })),
  failures: [...document.querySelectorAll('#failures .label')].map(l => l.dataset.week),
  targets: [...document.querySelectorAll('#targets .label')].map(l => l.dataset.target),
  suppressedCells: document.querySelectorAll('td.suppressed').length,
  regressions: [...document.querySelectorAll('#regressions li[data-command]')].map(l =>
    [l.dataset.week, l.dataset.command]),
  commandRows: [...document.querySelectorAll('#command-table tr[data-command]')].map(r =>
    [r.dataset.week, r.dataset.command, r.querySelector('td:nth-child(3)').textContent]),
})"""


def _at_width(browser: Browser, width: int) -> None:
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=width < 600,
    )
    browser.call("Page.reload")
    browser.wait_for("Page.loadEventFired")
    browser.drain()


def _shot(browser: Browser, width: int) -> bytes:
    height = int(browser.evaluate("document.documentElement.scrollHeight"))
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=width < 600,
    )
    return base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])


def test_the_team_page_at_desktop_and_phone_width(tmp_path: Path, browser: Browser) -> None:
    events = team(seed=21, developers=16, runs=1600, weeks=8, now=NOW)
    opts = report.options(NOW, weeks=8)
    made = report.build(report.duckdb_reader(in_duckdb(events, tmp_path)), opts)
    doc = report_text.as_dict(made)
    page = tmp_path / "team.html"
    page.write_text(report_html.page(made))
    hidden_commands = [c for c in doc["commands"] if c["suppressed"]]
    assert hidden_commands and [c for c in doc["commands"] if c["regression"]]

    browser.open(page.as_uri())
    for width in (1280, 390):
        _at_width(browser, width)
        seen = json.loads(browser.evaluate(READ_PAGE))
        assert browser.problems() == []
        assert set(browser.requests()) == {page.as_uri()}  # self-contained
        assert seen["ready"] == "1"
        assert seen["pageWidth"] <= width, f"sideways scrolling at {width} px"
        assert seen["smallest"] >= 10, f"text of {seen['smallest']:.1f} px at {width} px"

        # One small chart per command, a point per published week with its p50 and p90 and
        # regression flag, a grey mark per suppressed week, no number of a hidden cell.
        commands = sorted({c["command"] for c in doc["commands"]})
        assert sorted(c["command"] for c in seen["charts"]) == commands
        for chart in seen["charts"]:
            cells = [c for c in doc["commands"] if c["command"] == chart["command"]]
            assert chart["points"] == [
                [c["week"], c["p50_ms"], c["p90_ms"], int(c["regression"])]
                for c in cells
                if not c["suppressed"]
            ]
            assert chart["hidden"] == [c["week"] for c in cells if c["suppressed"]]
        assert seen["failures"] == [w["week"] for w in doc["weeks"]]
        published = sorted(
            (t for t in doc["targets"] if not t["suppressed"]), key=lambda t: -t["p50_ms"]
        )
        assert seen["targets"] == [t["name"] for t in published[:10]]

        # The latest week's commands; each hidden cell reads "suppressed" in every column.
        latest = [c for c in doc["commands"] if c["week"] == doc["weeks"][-1]["week"]]
        hidden_weeks = sum(w["suppressed"] for w in doc["weeks"])
        hidden_latest = sum(c["suppressed"] for c in latest)
        assert hidden_latest, "the latest week has a suppressed command"
        assert seen["suppressedCells"] == 3 * hidden_weeks + 6 * hidden_latest
        assert seen["commandRows"] == [
            [c["week"], c["command"], "suppressed" if c["suppressed"] else str(c["runs"])]
            for c in latest
        ]
        assert seen["regressions"] == [
            [c["week"], c["command"]] for c in doc["commands"] if c["regression"]
        ]

        shot = _shot(browser, width)
        (tmp_path / f"team-{width}.png").write_bytes(shot)
        if SCREENSHOT and width == 1280:
            SCREENSHOT.write_bytes(shot)


def test_the_page_check_sees_small_text_and_overflow(tmp_path: Path, browser: Browser) -> None:
    """The checks can fail: a wide table outside a scroller and 8 px text are caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width">'
        '</head><body><p style="font-size:8px">tiny</p><table style="width:900px"><tr><td>wide'
        "</td></tr></table></body></html>"
    )
    browser.open(page.as_uri())
    _at_width(browser, 390)
    seen = json.loads(browser.evaluate(READ_PAGE))
    assert seen["pageWidth"] > 390
    assert seen["smallest"] == 8
