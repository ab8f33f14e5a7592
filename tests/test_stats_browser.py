"""`stats --html` in a real headless Chromium: the page made from a known history loads with no
console error and no request beyond its own file, shows the four charts with exactly the runs,
days, totals and make targets of the history, and is photographed.

STATS_SCREENSHOT=docs/stats-report.png python -m pytest tests/test_stats_browser.py
refreshes the picture the README shows."""

from __future__ import annotations

import json
import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from send_metrics.local.stats import BREAKDOWN_FIELD
from tests.browser import Browser
from tests.helpers import add_runs, sm

# Where to copy the screenshot (the README's picture), resolved before tests change directory.
SCREENSHOT = (
    Path(os.environ["STATS_SCREENSHOT"]).resolve() if "STATS_SCREENSHOT" in os.environ else None
)
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
HOSTILE = "<img src=x onerror=alert(1)></script><script>console.error('pwned')</script>"

READ_PAGE = """JSON.stringify({
  ready: document.body.dataset.ready,
  charts: [...document.querySelectorAll('figure.chart')].map(f => f.dataset.chart),
  heights: [...document.querySelectorAll('figure.chart > svg')]
    .map(s => Math.round(s.getBoundingClientRect().height)),
  points: [...document.querySelectorAll('#chart-duration circle.point')].map(c =>
    [c.dataset.command, c.dataset.start, Number(c.dataset.durationMs), Number(c.dataset.failed)]),
  days: [...document.querySelectorAll('#chart-failures g.day')].map(g =>
    [g.dataset.day, Number(g.dataset.runs), Number(g.dataset.failures)]),
  slots: [...document.querySelectorAll('#chart-failures g.slot')].map(g =>
    [g.dataset.slot, Number(g.dataset.runs), Number(g.dataset.failures)]),
  series: [...document.querySelectorAll('#chart-duration .series')].map(s => s.dataset.command),
  summary: document.querySelector('.sub') && document.querySelector('.sub').textContent,
  time: [...document.querySelectorAll('#chart-time g.bar')].map(g =>
    [g.dataset.command, Number(g.dataset.totalMs)]),
  breakdown: [...document.querySelectorAll('#chart-breakdown g.bar')].map(g =>
    [g.dataset.target, Number(g.dataset.totalMs), Number(g.dataset.critical)]),
  title: document.querySelector('#chart-breakdown').parentElement.querySelector('h2').textContent,
  images: document.querySelectorAll('img').length,
  rows: [...document.querySelectorAll('#commands tr[data-command]')].map(r => r.dataset.command),
})"""


def _day(days_ago: int, hour: int) -> str:
    moment = NOW - timedelta(days=days_ago) + timedelta(hours=hour - 12)
    return moment.isoformat(timespec="milliseconds")


def _provision(total: float) -> dict:
    return {
        BREAKDOWN_FIELD: [
            {"name": "pull", "duration_ms": total / 2, "exit_code": 0, "critical": True},
            {"name": "migrate", "duration_ms": total * 3 / 10, "exit_code": 0, "critical": True},
            {"name": "assets", "duration_ms": total / 5, "exit_code": 0, "critical": False},
        ]
    }


# (command, start, duration_ms, exit code, extra fields): four commands over three weeks;
# `test` got slower in the last week, `dev.provision` is traced by the make tracing.
DAYS = 21
HISTORY = [
    *[
        ("dev.provision", _day(d, 9), 60_000.0 + (d % 5) * 2000, 0, _provision(60_000.0))
        for d in range(DAYS)
    ],
    *[("dev.up.lms", _day(d, 10), 25_000.0 + (d % 3) * 3000, 0, {}) for d in range(DAYS)],
    *[("dev.up.lms", _day(d, 14), 27_000.0, int(d % 6 == 0), {}) for d in range(DAYS)],
    *[
        ("test", _day(d, 11), 11_000.0 if d < 7 else 8_000.0, int(d % 4 == 0), {})
        for d in range(DAYS)
    ],
    *[("lint", _day(d, 15), 1_500.0 + d * 10, 0, {}) for d in range(0, DAYS, 2)],
]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_report_in_a_real_browser(home: Path, tmp_path: Path, browser: Browser) -> None:
    add_runs(home, HISTORY)
    page = tmp_path / "report.html"
    made = sm("stats", "--html", str(page))
    assert made.returncode == 0, made.stderr
    assert made.stdout == f"Wrote {page} ({len(HISTORY)} runs).\n"

    browser.open(page.as_uri())
    seen = json.loads(browser.evaluate(READ_PAGE))
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]  # self-contained: nothing else is fetched
    assert seen["ready"] == "1"  # the page's script ran
    assert seen["charts"] == ["duration", "failures", "time", "breakdown"]
    assert all(h > 100 for h in seen["heights"]), seen["heights"]

    # Every run is a point, with its command, time, duration and outcome.
    expected = sorted([c, s, d, int(e != 0)] for c, s, d, e, _ in HISTORY)
    assert sorted(seen["points"]) == expected

    # One group per UTC day from the first run to the last, with its runs and failures.
    days: dict[str, list[int]] = {}
    for _, start, _, code, _ in HISTORY:
        day = days.setdefault(start[:10], [0, 0])
        day[0] += 1
        day[1] += int(code != 0)
    assert {d: [r, f] for d, r, f in seen["days"]} == days
    assert len(seen["days"]) == DAYS
    assert seen["days"][-1] == [NOW.date().isoformat(), 5, 2]  # today: 2 of the 5 failed

    totals: dict[str, float] = {}
    for command, _, duration, _, _ in HISTORY:
        totals[command] = totals.get(command, 0.0) + duration
    assert dict((c, t) for c, t in seen["time"]) == totals
    assert [c for c, _ in seen["time"]] == sorted(totals, key=lambda c: -totals[c])

    # The traced make run that says the most (all alike here: the newest), target by target.
    assert seen["title"] == "Breakdown of a make run: dev.provision"
    assert seen["breakdown"] == [["pull", 30_000, 1], ["migrate", 18_000, 1], ["assets", 12_000, 0]]

    assert seen["rows"] == sorted(totals, key=lambda c: -totals[c])

    # The legend hides and shows a command's series.
    hidden = browser.evaluate(
        "document.querySelector('.legend-item[data-command=\"test\"]').click();"
        "getComputedStyle(document.querySelector('.series[data-command=\"test\"]')).display"
    )
    assert hidden == "none"
    browser.evaluate("document.querySelector('.legend-item[data-command=\"test\"]').click()")
    browser.drain()
    assert browser.problems() == []

    shot = browser.screenshot(tmp_path / "stats-report.png")
    width, height = _png_size(shot)
    assert width == 1000 and height > 1500
    if SCREENSHOT:
        SCREENSHOT.write_bytes(shot)


def test_a_command_name_is_text_never_markup(home: Path, tmp_path: Path, browser: Browser) -> None:
    add_runs(home, [("lint", _day(1, 9), 1000.0, 0), (HOSTILE, _day(0, 9), 300.0, 1)])
    page = tmp_path / "report.html"
    assert sm("stats", "--html", str(page)).returncode == 0
    browser.open(page.as_uri())
    seen = json.loads(browser.evaluate(READ_PAGE))
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]
    assert seen["images"] == 0  # no element made from the name, no script of its own ran
    assert HOSTILE in seen["rows"]
    assert seen["title"] == "Durations of the slowest command: lint"


def test_the_browser_check_sees_errors_and_requests(tmp_path: Path, browser: Browser) -> None:
    """The checks above can fail: a page with a console error, an exception and a missing
    resource is caught by each of them."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="missing.png">'
        "<script>console.error('boom'); notAFunction();</script></body></html>"
    )
    browser.open(page.as_uri())
    problems = browser.problems()
    assert any(p == "console.error: boom" for p in problems), problems
    assert any(p.startswith("exception:") for p in problems), problems
    assert any("missing.png" in p or "ERR_FILE_NOT_FOUND" in p for p in problems), problems
    assert (tmp_path / "missing.png").as_uri() in browser.requests()


def test_the_empty_report_loads_cleanly(tmp_path: Path, browser: Browser) -> None:
    page = tmp_path / "empty.html"
    assert sm("stats", "--html", str(page)).returncode == 0
    browser.open(page.as_uri())
    assert browser.problems() == []
    assert browser.evaluate("document.querySelectorAll('figure.chart').length") == 0
    assert "No runs recorded" in browser.evaluate("document.getElementById('empty').textContent")


def test_the_readme_shows_the_screenshot() -> None:
    root = Path(__file__).parent.parent
    assert "](docs/stats-report.png)" in (root / "README.md").read_text()
    _png_size((root / "docs/stats-report.png").read_bytes())


def test_a_single_instant_run_draws_every_chart(
    home: Path, tmp_path: Path, browser: Browser
) -> None:
    add_runs(home, [("true", _day(0, 9), 0.0, 0)])
    page = tmp_path / "one.html"
    assert sm("stats", "--html", str(page)).returncode == 0
    browser.open(page.as_uri())
    seen = json.loads(browser.evaluate(READ_PAGE))
    assert browser.problems() == []
    assert seen["charts"] == ["duration", "failures", "time", "breakdown"]
    assert seen["points"] == [["true", _day(0, 9), 0, 0]]
    assert seen["slots"] == [[_day(0, 9)[:16], 1, 0]]  # a short history: per 5 minutes
    assert seen["summary"].startswith("send_metrics: all recorded runs: 1 run of 1 command, ")
    assert all(h > 50 for h in seen["heights"][:2]), seen["heights"]
    assert "NaN" not in page.read_text()


# ---- day one: 80 runs of 16 commands in one session, on a phone and a desktop ----

SESSION_START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def _at(minutes: float) -> str:
    return (SESSION_START + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def _chain(names: list[str], step: float) -> dict:
    """A traced make run whose targets ran one after the other: all on the critical path."""
    return {
        BREAKDOWN_FIELD: [
            {"name": n, "start_ms": i * step, "duration_ms": step, "exit_code": 0, "critical": True}
            for i, n in enumerate(names)
        ]
    }


CHAIN = ["deps", "codegen", "compile", "link", "package", "build"]
# 16 commands over two hours: the slow ones never fail, two quick ones do; `image` is the
# slowest (largest median) but a one-target traced run; `build` is a chain of six targets.
DAY_ONE = [
    *[("build", _at(10 * i), 60_000.0, 0, _chain(CHAIN, 10_000.0)) for i in range(8)],
    *[("image", _at(10 * i + 3), 300_000.0, 0, _chain(["image"], 300_000.0)) for i in range(6)],
    *[
        (f"dev.up.svc{k}", _at(7 * i + k), 40_000.0 + k * 1000, 0, {})
        for k in range(10)
        for i in range(5)
    ],
    *[("lint", _at(15 * i + 5), 900.0, int(i % 2 == 0), {}) for i in range(8)],
    *[("fmt", _at(20 * i + 2), 300.0, int(i == 3), {}) for i in range(4)],
    *[("deploy", _at(110), 120_000.0, 0, {}) for _ in range(1)],
    *[("test", _at(30 * i + 9), 20_000.0, 0, {}) for i in range(3)],
]

MEASURE = """JSON.stringify({
  inner: window.innerWidth,
  page: document.documentElement.scrollWidth,
  left: Math.min(...[...document.querySelectorAll('h1, h2, p, .legend')]
    .map(e => e.getBoundingClientRect().left)),
  boxes: [...document.querySelectorAll('.scroll')].map(b => b.getBoundingClientRect().right),
  tables: [...document.querySelectorAll('table')].map(t =>
    [t.scrollWidth, t.parentElement.clientWidth, getComputedStyle(t.parentElement).overflowX]),
  chartText: Math.min(...[...document.querySelectorAll('figure svg text')].map(e => {
    const svg = e.ownerSVGElement;
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return parseFloat(getComputedStyle(e).fontSize) * scale;
  })),
  bodyText: Math.min(...[...document.querySelectorAll('p, td, th, .legend-item')]
    .map(e => parseFloat(getComputedStyle(e).fontSize))),
  background: getComputedStyle(document.body).backgroundColor,
  ink: getComputedStyle(document.querySelector('svg text')).fill,
  xs: [...document.querySelectorAll('#chart-duration circle.point')]
    .map(c => Number(c.getAttribute('cx'))),
})"""


def _brightness(colour: str) -> float:
    parts = [float(p) for p in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3]]
    return sum(parts) / 3


@pytest.mark.parametrize(("width", "dark"), [(390, False), (1280, False), (390, True)])
def test_a_day_one_report_is_readable_on_a_phone_and_a_desktop(
    home: Path, tmp_path: Path, browser: Browser, width: int, dark: bool
) -> None:
    assert (len(DAY_ONE), len({c for c, *_ in DAY_ONE})) == (80, 16)
    add_runs(home, DAY_ONE)
    page = tmp_path / "day-one.html"
    assert sm("stats", "--html", str(page)).returncode == 0
    browser.open(page.as_uri())
    browser.viewport(width, dark=dark)
    seen = json.loads(browser.evaluate(READ_PAGE))
    size = json.loads(browser.evaluate(MEASURE))
    assert browser.problems() == []
    assert size["inner"] == width
    # Nothing makes the page scroll sideways; text keeps off the edge; tables scroll in a box.
    assert size["page"] <= width, size
    assert size["left"] >= 8 and max(size["boxes"]) <= width, size
    assert all(overflow == "auto" and box <= width for _, box, overflow in size["tables"]), size
    assert size["chartText"] >= 10 and size["bodyText"] >= 12, size
    if dark:
        assert _brightness(size["background"]) < 60 and _brightness(size["ink"]) > 150, size
    else:
        assert _brightness(size["background"]) > 200 and _brightness(size["ink"]) < 100, size

    # The real time range: the first run at the left of the axis, the last at its right
    # (no half hour of padding, nothing in the future).
    assert min(size["xs"]) == pytest.approx(70, abs=1) and max(size["xs"]) == pytest.approx(
        880, abs=1
    )
    # Every failing command is drawn, whatever its share of the time.
    failing = {c for c, _, _, code, _ in DAY_ONE if code}
    assert failing == {"lint", "fmt"} and failing <= set(seen["series"]), seen["series"]
    assert {p[0] for p in seen["points"] if p[3]} == failing
    # Day one in slots (not one giant bar), every run counted once.
    assert len(seen["slots"]) >= 8 and sum(r for _, r, _ in seen["slots"]) == 80
    assert max(r for _, r, _ in seen["slots"]) < 20
    assert sum(f for _, _, f in seen["slots"]) == sum(1 for *_, code, _ in DAY_ONE if code)
    # The breakdown of the make run that says the most: the chain, not the slowest command.
    assert seen["title"] == "Breakdown of a make run: build"
    assert [name for name, _, _ in seen["breakdown"]] == CHAIN
    assert all(critical == 1 for _, _, critical in seen["breakdown"])
    failed = sum(1 for *_, code, _ in DAY_ONE if code)
    assert seen["summary"].startswith(
        f"send_metrics: all recorded runs: 80 runs of 16 commands, {failed} failed"
    )
    if width == 390 and not dark and SCREENSHOT:
        browser.screenshot(SCREENSHOT.with_name("stats-report-390.png"), width=390)
