"""`stats --html`: one self-contained page of charts, drawn as inline SVG, from the stats data.

Plain SVG written here rather than a charting library: four simple charts do not need one, the
page stays small and works offline, and nothing new is installed or imported on any path.
"""

from __future__ import annotations

import base64
import hashlib
import math
import statistics
import sys
from datetime import UTC, datetime, timedelta
from html import escape
from typing import NamedTuple

from send_metrics.errors import MetricsError
from send_metrics.stats import CommandStats, Detail, Report, Run
from send_metrics.stats_text import human

# Okabe-Ito: told apart with the common forms of colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MAX_SERIES = len(PALETTE)  # commands drawn in the duration chart: the busiest ones
MAX_POINTS = 1000  # newest runs drawn per command; the tables count them all
MAX_BARS = 15
MAX_DAYS = 366
_W, _H = 900, 300  # every chart's drawing box
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 40

# Legend entries toggle their command's series; `data-ready` tells that the script ran.
_SCRIPT = """
document.querySelectorAll('[data-toggle]').forEach(function (item) {
  item.addEventListener('click', function () {
    var hidden = item.classList.toggle('off');
    document.querySelectorAll('.series[data-series="' + item.dataset.toggle + '"]')
      .forEach(function (s) { s.style.display = hidden ? 'none' : ''; });
  });
});
document.body.dataset.ready = '1';
"""
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 960px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.sub { color: #666; margin-top: 0; } figure { margin: 0; }
figure > svg { width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #333; } .axis line { stroke: #ccc; }
.legend { margin: 4px 0; } .legend-item { cursor: pointer; margin-right: 12px; }
.legend-item.off { opacity: 0.35; }
table { border-collapse: collapse; margin-top: 6px; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; } .failed { color: #D55E00; }
.note { color: #666; font-size: 12px; }
"""


class Scale(NamedTuple):
    """A linear map from data values to drawing coordinates."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `high`."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step) + 1)]


# Tick steps that read well as durations: 1 ms ... 500 ms, 1 s ... 30 s, 1 min ... 30 min, hours.
_DURATION_STEPS = tuple(
    m * unit
    for unit, multiples in (
        (1, (1, 2, 5, 10, 20, 50, 100, 200, 500)),
        (1000, (1, 2, 5, 10, 15, 30)),
        (60_000, (1, 2, 5, 10, 15, 30)),
        (3_600_000, (1, 2, 3, 6, 12, 24, 48, 168)),
    )
    for m in multiples
)


def duration_ticks(high_ms: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `high_ms` at a step a person reads easily (15 s, 2 min, 1 h)."""
    step = next((s for s in _DURATION_STEPS if s * count >= high_ms), None)
    if step is None:
        return nice_ticks(high_ms, count)
    return [float(i * step) for i in range(max(1, math.ceil(high_ms / step)) + 1)]


def _svg(label: str, body: list[str], height: int = _H) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _figure(chart: str, title: str, svg: str, note: str = "") -> str:
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<section><h2>{escape(title)}</h2><figure class="chart" id="chart-{chart}" '
        f'data-chart="{chart}">{svg}</figure>{extra}</section>'
    )


def _y_axis(ticks: list[float], y: Scale, fmt: str) -> list[str]:
    out = ['<g class="axis">']
    for tick in ticks:
        pos = y(tick)
        label = human(tick) if fmt == "ms" else f"{tick:g}"
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{pos:.1f}" y2="{pos:.1f}"/>'
            f'<text x="{_LEFT - 6}" y="{pos + 4:.1f}" text-anchor="end">{label}</text>'
        )
    out.append("</g>")
    return out


def _time_axis(low: datetime, high: datetime, x: Scale) -> list[str]:
    span = (high - low).total_seconds()
    fmt = "%m-%d %H:%M" if span < 2 * 86400 else "%Y-%m-%d"
    out = ['<g class="axis">']
    for i in range(6):
        moment = low + timedelta(seconds=span * i / 5)
        pos = x(moment.timestamp())
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(
            f'<text x="{pos:.1f}" y="{_H - _BOTTOM + 18}" text-anchor="{anchor}">'
            f"{moment.strftime(fmt)}</text>"
        )
    out.append("</g>")
    return out


def duration_chart(report: Report) -> str:
    """Duration of each run over time, one coloured series per command (the busiest ones)."""
    shown = [c.command for c in report.commands[:MAX_SERIES]]
    runs = {name: [r for r in report.runs if r.command == name][-MAX_POINTS:] for name in shown}
    every = [r for these in runs.values() for r in these]
    low = min(r.start for r in every)
    high = max(r.start for r in every)
    if high - low < timedelta(minutes=1):
        low, high = low - timedelta(minutes=30), high + timedelta(minutes=30)
    ticks = duration_ticks(max(r.duration_ms for r in every))
    x = Scale(low.timestamp(), high.timestamp(), _LEFT, _W - _RIGHT)
    y = Scale(0, ticks[-1], _H - _BOTTOM, _TOP)
    body = _y_axis(ticks, y, "ms") + _time_axis(low, high, x)
    for index, name in enumerate(shown):
        colour = PALETTE[index]
        points = [(x(r.start.timestamp()), y(r.duration_ms), r) for r in runs[name]]
        body.append(f'<g class="series" data-series="{index}" data-command="{escape(name)}">')
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                'stroke-width="1.5" stroke-opacity="0.6"/>'
            )
        for px, py, run in points:
            state = "failed" if run.failed else "ok"
            fill = "#fff" if run.failed else colour  # a failed run is a hollow point
            body.append(
                f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{fill}" '
                f'stroke="{colour}" stroke-width="1.5" '
                f'data-command="{escape(name)}" data-start="{escape(run.start_time)}" '
                f'data-duration-ms="{run.duration_ms:g}" data-failed="{int(run.failed)}">'
                f"<title>{escape(name)} {escape(run.start_time[:19])} "
                f"{human(run.duration_ms)} {state}</title></circle>"
            )
        body.append("</g>")
    legend = "".join(
        f'<span class="legend-item" data-toggle="{i}" data-command="{escape(name)}">'
        f'<svg viewBox="0 0 12 12" width="12" height="12"><rect width="12" height="12" '
        f'fill="{PALETTE[i]}"/></svg> {escape(name)}</span> '
        for i, name in enumerate(shown)
    )
    note = "Hollow points are failed runs. Click a name to hide or show its runs. Times in UTC."
    if len(report.commands) > MAX_SERIES:
        note += f" The {MAX_SERIES} commands with the most time spent are drawn."
    return _figure(
        "duration",
        "Duration over time per command",
        f'<div class="legend">{legend}</div>' + _svg("duration of each run over time", body),
        note,
    )


def failures_chart(report: Report) -> str:
    """Runs and failures per UTC day: grey for all runs, the failed share drawn over it."""
    per_day: dict[str, list[Run]] = {}
    for run in report.runs:
        per_day.setdefault(run.start.date().isoformat(), []).append(run)
    first = min(report.runs, key=lambda r: r.start).start.date()
    last = max(report.runs, key=lambda r: r.start).start.date()
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    ticks = nice_ticks(max(len(per_day.get(d, [])) for d in days))
    y = Scale(0, ticks[-1], _H - _BOTTOM, _TOP)
    slot = (_W - _LEFT - _RIGHT) / len(days)
    width = max(1.0, slot * 0.8)
    body = _y_axis(ticks, y, "count")
    label_every = max(1, math.ceil(len(days) / 10))
    for i, day in enumerate(days):
        runs = per_day.get(day, [])
        failed = sum(r.failed for r in runs)
        left = _LEFT + i * slot + (slot - width) / 2
        body.append(
            f'<g class="day" data-day="{day}" data-runs="{len(runs)}" data-failures="{failed}">'
            f"<title>{day}: {len(runs)} runs, {failed} failed</title>"
            f'<rect x="{left:.1f}" y="{y(len(runs)):.1f}" width="{width:.1f}" '
            f'height="{y(0) - y(len(runs)):.1f}" fill="#bbb"/>'
            f'<rect class="failures" x="{left:.1f}" y="{y(failed):.1f}" width="{width:.1f}" '
            f'height="{y(0) - y(failed):.1f}" fill="#D55E00"/></g>'
        )
        if i % label_every == 0:
            body.append(
                f'<text x="{left + width / 2:.1f}" y="{_H - _BOTTOM + 18}" '
                f'text-anchor="middle">{day[5:]}</text>'
            )
    return _figure(
        "failures",
        "Failures over time",
        _svg("runs and failures per day", body),
        "Per UTC day: grey bars are all runs, red the failed ones.",
    )


def _bars(items: list[tuple[str, float, str, bool]], label: str) -> str:
    """Horizontal bars: (name, value in ms, data attributes, highlighted) each."""
    height = _TOP + 24 * len(items) + 10
    longest = max((v for _, v, _, _ in items), default=1.0) or 1.0
    x = Scale(0, longest, 220, _W - 90)
    body = []
    for i, (name, value, data, marked) in enumerate(items):
        top = _TOP + i * 24
        colour = "#D55E00" if marked else "#0072B2"
        shown = name if len(name) <= 32 else name[:31] + "…"
        body.append(
            f'<g class="bar" {data}><title>{escape(name)}: {human(value)}</title>'
            f'<text x="212" y="{top + 14}" text-anchor="end">{escape(shown)}</text>'
            f'<rect x="220" y="{top + 2}" width="{max(1.0, x(value) - 220):.1f}" height="16" '
            f'fill="{colour}"/><text x="{x(value) + 6:.1f}" y="{top + 14}">{human(value)}</text>'
            "</g>"
        )
    return _svg(label, body, height)


def time_spent_chart(commands: list[CommandStats]) -> str:
    """Total time spent per command over the period, the largest first."""
    items = [
        (
            c.command,
            c.total_ms,
            f'data-command="{escape(c.command)}" data-total-ms="{c.total_ms:g}"',
            False,
        )
        for c in commands[:MAX_BARS]
    ]
    svg = _bars(items, "time spent per command")
    note = f"The {MAX_BARS} commands with the most time spent." if len(commands) > MAX_BARS else ""
    return _figure("time", "Time spent per command", svg, note)


def breakdown_chart(slowest: CommandStats, found: Detail) -> str:
    """Where the slowest command's time goes: the targets inside its traced make runs, or,
    without a trace, how its durations spread."""
    title = f"Breakdown of the slowest command: {slowest.command}"
    if found.breakdown:
        items = [
            (
                t.name,
                t.total_ms,
                f'data-target="{escape(t.name)}" data-total-ms="{t.total_ms:g}" '
                f'data-critical="{t.critical}"',
                t.critical > 0,
            )
            for t in found.breakdown[:MAX_BARS]
        ]
        svg = _bars(items, f"targets inside {slowest.command}")
        note = (
            f"Time spent in each target over {found.traced_runs} traced make runs; "
            "red: on the critical path at least once."
        )
        return _figure("breakdown", title, svg, note)
    durations = sorted(r.duration_ms for r in found.runs)
    bins = _histogram(durations)
    items = [
        (
            f"{human(low)} to {human(high)}",
            float(count),
            f'data-bin-low-ms="{low:g}" data-bin-high-ms="{high:g}" data-runs="{count}"',
            False,
        )
        for low, high, count in bins
    ]
    svg = _count_bars(items)
    note = (
        f"No make trace recorded for {slowest.command}: how its {len(durations)} runs' "
        f"durations spread (median {human(statistics.median(durations))})."
    )
    return _figure("breakdown", title, svg, note)


def _count_bars(items: list[tuple[str, float, str, bool]]) -> str:
    height = _TOP + 24 * len(items) + 10
    longest = max((v for _, v, _, _ in items), default=1.0) or 1.0
    x = Scale(0, longest, 220, _W - 90)
    body = []
    for i, (name, value, data, _) in enumerate(items):
        top = _TOP + i * 24
        body.append(
            f'<g class="bin" {data}><title>{escape(name)}: {value:g} runs</title>'
            f'<text x="212" y="{top + 14}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="220" y="{top + 2}" width="{max(1.0, x(value) - 220):.1f}" height="16" '
            f'fill="#0072B2"/><text x="{x(value) + 6:.1f}" y="{top + 14}">{value:g}</text></g>'
        )
    return _svg("how the durations spread", body, height)


def _histogram(durations: list[float], count: int = 8) -> list[tuple[float, float, int]]:
    low, high = durations[0], durations[-1]
    if high - low <= 0:
        return [(low, high, len(durations))]
    step = (high - low) / count
    bins = [0] * count
    for value in durations:
        bins[min(count - 1, int((value - low) / step))] += 1
    return [(low + i * step, low + (i + 1) * step, n) for i, n in enumerate(bins)]


def _table(report: Report) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("command", "runs", "failures", "ok", "median", "p95", "total", "trend")
    )
    rows = []
    for c in report.commands:
        trend: str = "-" if c.trend is None else c.trend
        if c.change is not None:
            trend += f" ({c.change * 100:+.0f}%)"
        failed = ' class="failed"' if c.failures else ""
        rows.append(
            f'<tr data-command="{escape(c.command)}"><td>{escape(c.command)}</td>'
            f"<td>{c.runs}</td><td{failed}>{c.failures}</td>"
            f"<td>{c.success_rate * 100:.0f}%</td><td>{human(c.median_ms)}</td>"
            f"<td>{human(c.p95_ms)}</td><td>{human(c.total_ms)}</td><td>{trend}</td></tr>"
        )
    slow = "".join(
        f"<tr><td>{escape(r.command)}</td><td>{escape(r.start_time[:19].replace('T', ' '))}</td>"
        f"<td>{human(r.duration_ms)}</td><td>{'failed' if r.failed else 'ok'}</td></tr>"
        for r in report.slowest
    )
    return (
        f'<section><h2>Per command</h2><table id="commands"><tr>{head}</tr>{"".join(rows)}'
        '</table></section><section><h2>Slowest runs</h2><table id="slowest">'
        f"<tr><th>command</th><th>started (UTC)</th><th>duration</th><th>outcome</th></tr>"
        f"{slow}</table></section>"
    )


def page(report: Report, slowest_detail: Detail | None, app: str) -> str:
    """The whole page: a summary line, the four charts and the tables; no external resource."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    since = report.period.since
    span = "all recorded runs" if since is None else f"runs since {since:%Y-%m-%d %H:%M} UTC"
    failed = sum(r.failed for r in report.runs)
    summary = (
        f"{escape(app)}: {span}: {len(report.runs)} runs of {len(report.commands)} commands, "
        f"{failed} failed, {human(sum(r.duration_ms for r in report.runs))} in all. "
        f"Made {made} by send_metrics stats --html."
    )
    slowest = next((c for c in report.commands if c.command == slowest_command(report)), None)
    if slowest is not None:
        sections = [
            duration_chart(report),
            failures_chart(report),
            time_spent_chart(report.commands),
        ]
        if slowest_detail is not None and slowest_detail.runs:
            sections.append(breakdown_chart(slowest, slowest_detail))
        sections.append(_table(report))
        content = "".join(sections)
    else:
        content = '<p id="empty">No runs recorded in this period.</p>'
    body = f'<h1>Your runs</h1><p class="sub">{summary}</p>{content}'
    return document(f"{app}: your runs", _CSS, body, _SCRIPT)


def document(title: str, css: str, body: str, script: str) -> str:
    """A whole self-contained page: nothing may be fetched (it works offline) and only its own
    script may run (a name in the data can never run code)."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f"<body>{body}<script>{script}</script></body></html>\n"
    )


def slowest_command(report: Report) -> str | None:
    """The command whose breakdown the page shows: the one with the largest median."""
    if not report.commands:
        return None
    return max(report.commands, key=lambda c: (c.median_ms, c.command)).command


def write(path: str, text: str) -> None:
    """Write the page to `path` (`-`: standard output); a path we cannot write is one line."""
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise MetricsError(f"cannot write {path} ({exc.strerror or exc})") from None
