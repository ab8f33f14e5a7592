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
from typing import Any, NamedTuple

from send_metrics.errors import MetricsError
from send_metrics.local.stats import CommandStats, Detail, Report, Run
from send_metrics.local.stats_text import human

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
# Readable from a phone (390 px) to a desktop: the page never scrolls sideways; a chart or a
# table wider than the screen scrolls in its own box, and chart text never shrinks below
# 10 px (12 units in a chart at least 760 px wide). Dark when the system is.
_CSS = """
:root { color-scheme: light dark; --fg: #222; --muted: #666; --bg: #fff; --rule: #eee;
  --grid: #ccc; --all: #bbb; }
@media (prefers-color-scheme: dark) { :root { --fg: #ddd; --muted: #aaa; --bg: #161616;
  --rule: #333; --grid: #444; --all: #666; } }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; padding: 0 16px;
  max-width: 960px; color: var(--fg); background: var(--bg); overflow-wrap: anywhere; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.sub { color: var(--muted); margin-top: 0; } figure { margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
figure .scroll > svg { display: block; width: 100%; min-width: 760px; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); } .axis line { stroke: var(--grid); }
.point[data-failed="1"] { fill: var(--bg); } .all { fill: var(--all); }
.legend { margin: 4px 0; } .legend-item { cursor: pointer; margin-right: 12px;
  white-space: nowrap; display: inline-block; }
.legend-item.off { opacity: 0.35; }
table { border-collapse: collapse; margin-top: 6px; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid var(--rule);
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } .failed { color: #D55E00; }
.note { color: var(--muted); font-size: 12px; }
"""


def plural(count: int, word: str) -> str:
    """`1 run`, `2 runs`: every count the page says in words."""
    return f"{count} {word}{'' if count == 1 else 's'}"


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
    """Round tick values from 0 to at least `high` (whole numbers from 1 up: counts)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
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
        f'<div class="scroll"><svg viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg></div>"
    )


def _figure(chart: str, title: str, svg: str, note: str = "") -> str:
    """A titled chart; its drawing scrolls in its own box where the screen is narrow."""
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
    fmt = (
        "%H:%M" if low.date() == high.date() else "%m-%d %H:%M" if span < 2 * 86400 else "%Y-%m-%d"
    )
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


def drawn_commands(report: Report) -> list[str]:
    """The commands the duration chart draws: the MAX_SERIES with the most time spent, and
    every one that failed (a failure is what a reader looks for, and a quick failing command
    has little time), up to MAX_SERIES more, those with the most failures first; the busiest
    order is kept."""
    chosen = {c.command for c in report.commands[:MAX_SERIES]}
    failing = sorted(
        (c for c in report.commands if c.failures and c.command not in chosen),
        key=lambda c: -c.failures,
    )
    chosen.update(c.command for c in failing[:MAX_SERIES])
    return [c.command for c in report.commands if c.command in chosen]


def duration_chart(report: Report) -> str:
    """Duration of each run over time, one coloured series per command; the axis spans the
    runs' own time (a short history is not padded into the future)."""
    shown = drawn_commands(report)
    runs = {name: [r for r in report.runs if r.command == name][-MAX_POINTS:] for name in shown}
    every = [r for these in runs.values() for r in these]
    low = min(r.start for r in every)
    high = max(r.start for r in every)
    if high - low < timedelta(minutes=1):  # one instant: a minute up to it, never past it
        low = high - timedelta(minutes=1)
    ticks = duration_ticks(max(r.duration_ms for r in every))
    x = Scale(low.timestamp(), high.timestamp(), _LEFT, _W - _RIGHT)
    y = Scale(0, ticks[-1], _H - _BOTTOM, _TOP)
    body = _y_axis(ticks, y, "ms") + _time_axis(low, high, x)
    for index, name in enumerate(shown):
        colour = PALETTE[index % len(PALETTE)]
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
            fill = "#fff" if run.failed else colour  # a failed run is hollow (CSS: the page's)
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
        f'fill="{PALETTE[i % len(PALETTE)]}"/></svg> {escape(name)}</span> '
        for i, name in enumerate(shown)
    )
    note = "Hollow points are failed runs. Click a name to hide or show its runs. Times in UTC."
    if len(report.commands) > len(shown):
        note += (
            f" Drawn: {plural(len(shown), 'command')} of {len(report.commands)}, every one "
            "that failed and those with the most time spent."
        )
    return _figure(
        "duration",
        "Duration over time per command",
        f'<div class="legend">{legend}</div>' + _svg("duration of each run over time", body),
        note,
    )


def failures_chart(report: Report) -> str:
    """Runs and failures per UTC day (in slots of 5 minutes to an hour when the runs span two
    days or less): grey for all runs, the failed share drawn over it."""
    first_run = min(r.start for r in report.runs)
    last_run = max(r.start for r in report.runs)
    if last_run - first_run <= timedelta(days=2):
        return _failures_per_slot(report, first_run, last_run)
    per_day: dict[str, list[Run]] = {}
    for run in report.runs:
        per_day.setdefault(run.start.date().isoformat(), []).append(run)
    first = first_run.date()
    last = last_run.date()
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
            f"<title>{day}: {plural(len(runs), 'run')}, {failed} failed</title>"
            f'<rect class="all" x="{left:.1f}" y="{y(len(runs)):.1f}" width="{width:.1f}" '
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


_SLOT_MINUTES = (5, 10, 15, 30, 60)  # a short history's buckets: the smallest that fits
_MAX_SLOTS = 48


def _failures_per_slot(report: Report, first: datetime, last: datetime) -> str:
    """A short history: runs and failures per slot of 5 minutes to an hour (the smallest that
    keeps 48 bars at most), from the first run's slot to the last's: a day-one history is
    not one giant bar."""
    span = (last - first).total_seconds() / 60
    minutes = next((m for m in _SLOT_MINUTES if span / m < _MAX_SLOTS), 60)
    start = first.replace(minute=first.minute - first.minute % minutes, second=0, microsecond=0)
    slots = int((last - start).total_seconds() // (60 * minutes)) + 1
    counts = [[0, 0] for _ in range(slots)]
    for run in report.runs:
        slot = counts[int((run.start - start).total_seconds() // (60 * minutes))]
        slot[0] += 1
        slot[1] += run.failed
    ticks = nice_ticks(max(n for n, _ in counts))
    y = Scale(0, ticks[-1], _H - _BOTTOM, _TOP)
    slot_width = (_W - _LEFT - _RIGHT) / slots
    width = max(1.0, min(60.0, slot_width * 0.8))
    body = _y_axis(ticks, y, "count")
    label_every = max(1, math.ceil(slots / 8))
    for i, (runs, failed) in enumerate(counts):
        moment = (start + timedelta(minutes=i * minutes)).strftime("%Y-%m-%dT%H:%M")
        left = _LEFT + i * slot_width + (slot_width - width) / 2
        body.append(
            f'<g class="slot" data-slot="{moment}" data-minutes="{minutes}" data-runs="{runs}" '
            f'data-failures="{failed}">'
            f"<title>{moment[11:]} UTC, {minutes} min: {plural(runs, 'run')}, {failed} failed"
            f'</title><rect class="all" x="{left:.1f}" y="{y(runs):.1f}" width="{width:.1f}" '
            f'height="{y(0) - y(runs):.1f}" fill="#bbb"/>'
            f'<rect class="failures" x="{left:.1f}" y="{y(failed):.1f}" width="{width:.1f}" '
            f'height="{y(0) - y(failed):.1f}" fill="#D55E00"/></g>'
        )
        if i % label_every == 0:
            body.append(
                f'<text x="{left + width / 2:.1f}" y="{_H - _BOTTOM + 18}" '
                f'text-anchor="middle">{moment[11:]}</text>'
            )
    return _figure(
        "failures",
        "Failures over time",
        _svg(f"runs and failures per {minutes} minutes", body),
        f"Per {minutes} minutes (UTC): grey bars are all runs, red the failed ones.",
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


def _critical_ms(event: dict[str, Any]) -> float:
    return sum(
        float(t.get("duration_ms") or 0)
        for t in event.get("make_targets") or []
        if isinstance(t, dict) and t.get("critical")
    )


def most_informative(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The make run whose breakdown says the most: the most targets, then the longest critical
    path, then the newest; None without a traced run."""
    traced = [e for e in events if isinstance(e.get("make_targets"), list) and e["make_targets"]]
    if not traced:
        return None
    return max(
        traced,
        key=lambda e: (len(e["make_targets"]), _critical_ms(e), str(e.get("start_time", ""))),
    )


def run_breakdown_chart(event: dict[str, Any]) -> str:
    """Where one make run's time went: its targets in the order they started, red on the
    critical path."""
    targets = [t for t in event["make_targets"] if isinstance(t, dict) and "name" in t]
    targets.sort(key=lambda t: float(t.get("start_ms") or 0))
    items = [
        (
            str(t["name"]),
            float(t.get("duration_ms") or 0),
            f'data-target="{escape(str(t["name"]))}" '
            f'data-total-ms="{float(t.get("duration_ms") or 0):g}" '
            f'data-critical="{int(bool(t.get("critical")))}"',
            bool(t.get("critical")),
        )
        for t in targets[: MAX_BARS * 2]
    ]
    command = str(event.get("command", ""))
    started = str(event.get("start_time", ""))[:16].replace("T", " ")
    svg = _bars(items, f"targets of the make run {command}")
    critical = [t for t in targets if t.get("critical")]
    note = (
        f"The traced make run with the most targets and the longest critical path: {command}, "
        f"{started} UTC, {plural(len(targets), 'target')}, "
        f"{human(float(event.get('duration_ms') or 0))}. Red: the critical path "
        f"({plural(len(critical), 'target')}, {human(_critical_ms(event))})."
    )
    return _figure("breakdown", f"Breakdown of a make run: {command}", svg, note)


def breakdown_chart(slowest: CommandStats, found: Detail) -> str:
    """Without any traced make run: how the slowest command's durations spread."""
    title = f"Durations of the slowest command: {slowest.command}"
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
        f"No traced make run in this period: how the {plural(len(durations), 'run')} of "
        f"{slowest.command} spread (median {human(statistics.median(durations))})."
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
        '<section><h2>Per command</h2><div class="scroll"><table id="commands">'
        f"<tr>{head}</tr>{''.join(rows)}</table></div></section>"
        '<section><h2>Slowest runs</h2><div class="scroll"><table id="slowest">'
        f"<tr><th>command</th><th>started (UTC)</th><th>duration</th><th>outcome</th></tr>"
        f"{slow}</table></div></section>"
    )


def page(
    report: Report,
    slowest_detail: Detail | None,
    app: str,
    traced: dict[str, Any] | None = None,
) -> str:
    """The whole page: a summary line, the four charts and the tables; no external resource.
    `traced`: the make run whose breakdown is drawn (else the slowest command's spread)."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    since = report.period.since
    span = "all recorded runs" if since is None else f"runs since {since:%Y-%m-%d %H:%M} UTC"
    failed = sum(r.failed for r in report.runs)
    summary = (
        f"{escape(app)}: {span}: {plural(len(report.runs), 'run')} of "
        f"{plural(len(report.commands), 'command')}, "
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
        if traced is not None:
            sections.append(run_breakdown_chart(traced))
        elif slowest_detail is not None and slowest_detail.runs:
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
