"""`report --html`: one self-contained page a team lead reads in a minute: per command, its
weekly p50 and p90 as small line charts (one scale each, so a 2 s lint and a 5 min provision
both show their trend); the team's failure rate per week; the slowest make targets; the tables.

Charts are small inline SVGs (text stays legible at phone width) and HTML bars; nothing is
fetched. Suppressed numbers are never drawn: a suppressed week is a gap with a grey mark, a
suppressed cell reads `suppressed` (class `suppressed`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from html import escape

from send_metrics.local.report_html import PALETTE, Scale, document, duration_ticks
from send_metrics.local.stats_text import human
from send_metrics.operator.report import CommandWeek, Counts, Report
from send_metrics.operator.report_text import (
    OTHER,
    TOP_TARGETS,
    iso_week,
    printable,
    summary_line,
)

_W, _H = 320, 170  # one small chart's drawing box: about its size on screen, phone or desktop
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 10, 12, 26
MAX_COMMANDS = 24  # small charts drawn: the commands with the most published runs
_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 16px; max-width: 1100px;
  color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.sub, .note { color: #555; } .note { font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 14px; }
.small h3 { font-size: 14px; margin: 0 0 2px; overflow-wrap: anywhere; }
.small svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: #333; } .axis line { stroke: #ddd; }
.bars { display: grid; grid-template-columns: minmax(70px, max-content) 1fr; gap: 4px 10px;
  align-items: center; }
.bar { background: #0072B2; height: 16px; min-width: 2px; } .bar.failed { background: #D55E00; }
.label { font-size: 13px; overflow-wrap: anywhere; } .value { font-size: 13px; display: block; }
.scroll { overflow-x: auto; } table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 3px 8px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.suppressed { color: #777; font-style: italic; } .regression { color: #D55E00; font-weight: 600; }
.legend { font-size: 13px; color: #555; }
"""
_SCRIPT = "document.body.dataset.ready = '1';"


def _svg(label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _cell(value: str | None) -> str:
    if value is None:
        return '<td class="suppressed">suppressed</td>'
    return f"<td>{value}</td>"


def _pct(c: Counts) -> str | None:
    rate = c.failure_rate
    return None if rate is None else f"{rate * 100:.1f}%"


def command_chart(name: str, index: int, weeks: list[date], cells: list[CommandWeek]) -> str:
    """One command's weekly p50 (solid) and p90 (dashed); red points: regressions; grey marks
    at the bottom: weeks whose numbers are suppressed."""
    by_week = {c.week: c for c in cells}
    shown = [c for c in cells if c.p90_ms is not None]
    ticks = duration_ticks(max((c.p90_ms or 0.0) for c in shown) if shown else 1.0, 3)
    x = Scale(0, max(1, len(weeks) - 1), _LEFT, _W - _RIGHT)
    y = Scale(0, ticks[-1], _H - _BOTTOM, _TOP)
    colour = PALETTE[index % len(PALETTE)]
    body = ['<g class="axis">']
    for tick in ticks:
        body.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
            f'<text x="{_LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{human(tick)}</text>'
        )
    for i in sorted({0, len(weeks) - 1}):
        anchor = "start" if i == 0 and len(weeks) > 1 else "end"
        body.append(
            f'<text x="{x(i):.1f}" y="{_H - 8}" text-anchor="{anchor}">{iso_week(weeks[i])}</text>'
        )
    body.append("</g>")
    for field, dash in (("p50_ms", ""), ("p90_ms", ' stroke-dasharray="4 3"')):
        runs: list[list[str]] = [[]]
        for i, week in enumerate(weeks):
            cell = by_week.get(week)
            value = None if cell is None else getattr(cell, field)
            if value is None:
                runs.append([])  # a gap: no runs, or suppressed
                continue
            runs[-1].append(f"{x(i):.1f},{y(value):.1f}")
        for points in runs:
            if len(points) > 1:
                body.append(
                    f'<polyline class="{field}" points="{" ".join(points)}" fill="none" '
                    f'stroke="{colour}" stroke-width="2"{dash}/>'
                )
    for i, week in enumerate(weeks):
        cell = by_week.get(week)
        if cell is None:
            continue
        if cell.p50_ms is None:
            body.append(
                f'<rect class="suppressed-week" data-week="{iso_week(week)}" x="{x(i) - 3:.1f}" '
                f'y="{_H - _BOTTOM - 6}" width="6" height="6" fill="#999">'
                f"<title>{iso_week(week)}: suppressed</title></rect>"
            )
            continue
        fill = "#D55E00" if cell.regression else colour
        body.append(
            f'<circle class="point" cx="{x(i):.1f}" cy="{y(cell.p50_ms):.1f}" '
            f'r="{4 if cell.regression else 2.5}" fill="{fill}" data-week="{iso_week(week)}" '
            f'data-p50-ms="{round(cell.p50_ms, 3)}" data-p90-ms="{round(cell.p90_ms or 0, 3)}" '
            f'data-regression="{int(cell.regression)}"><title>{iso_week(week)}: p50 '
            f"{human(cell.p50_ms)}, p90 {human(cell.p90_ms or 0)}</title></circle>"
        )
    return (
        f'<div class="small" data-command="{escape(name)}"><h3>{escape(name)}</h3>'
        f"{_svg(f'weekly p50 and p90 of {name}', body)}</div>"
    )


def _bars(rows: Sequence[tuple[str, float | None, str, str]], css: str = "") -> str:
    """HTML bars: (label, value or None when suppressed, text, data attributes)."""
    top = max((v for _, v, _, _ in rows if v is not None), default=0.0) or 1.0
    out = []
    for label, value, text, data in rows:
        out.append(f'<div class="label" {data}>{escape(label)}</div>')
        if value is None:
            out.append('<div class="suppressed">suppressed</div>')
        else:
            width = max(0.5, value / top * 85)
            out.append(
                f'<div><span class="bar {css}" style="display:inline-block;width:{width:.1f}%">'
                f'</span><span class="value">{text}</span></div>'
            )
    return '<div class="bars">' + "".join(out) + "</div>"


def _sections(report: Report) -> list[str]:
    weeks = [w.week for w in report.weeks]
    runs: dict[str, int] = {}
    for c in report.commands:
        runs[c.command] = runs.get(c.command, 0) + (c.counts.runs or 0)
    names = sorted(runs, key=lambda n: (-runs[n], n))[:MAX_COMMANDS]
    charts = [
        command_chart(n, i, weeks, [c for c in report.commands if c.command == n])
        for i, n in enumerate(names)
    ]
    opts = report.options
    more = len(runs) - len(names)
    out = [
        '<section id="durations"><h2>Duration per command, per week</h2>'
        '<p class="legend">Solid: p50 (median); dashed: p90. Red points: a regression (p50 up '
        f"by more than {opts.regression * 100:.0f}% on the week before, at least "
        f"{opts.regression_runs} runs in both). Grey marks: suppressed weeks.</p>"
        f'<div class="grid">{"".join(charts)}</div>'
        + (f'<p class="note">And {more} more commands (see the table).</p>' if more > 0 else "")
        + "</section>"
    ]
    failure_rows = [
        (
            iso_week(w.week),
            w.counts.failure_rate,
            f"{_pct(w.counts)} of {w.counts.runs} runs",
            f'data-week="{iso_week(w.week)}"',
        )
        for w in report.weeks
    ]
    out.append(
        '<section id="failures"><h2>Failure rate per week</h2>'
        f"{_bars(failure_rows, 'failed')}</section>"
    )
    targets = sorted(
        (t for t in report.targets if not t.suppressed),
        key=lambda t: (-(t.p50_ms or 0), t.name),
    )[:TOP_TARGETS]
    hidden = sum(t.suppressed for t in report.targets)
    target_rows = [
        (
            t.name,
            t.p50_ms,
            f"p50 {human(t.p50_ms or 0)}, p90 {human(t.p90_ms or 0)}, critical in about "
            f"{(t.critical_share or 0) * 100:.0f}% of its runs",
            f'data-target="{escape(t.name)}"',
        )
        for t in targets
    ]
    if report.targets:
        out.append(
            '<section id="targets"><h2>Slowest make targets</h2>'
            + _bars(target_rows)
            + (
                f'<p class="note">{hidden} more targets were run by fewer than '
                f"{opts.min_developers} developers: suppressed.</p>"
                if hidden
                else ""
            )
            + "</section>"
        )
    out.append(_tables(report))
    return out


def _tables(report: Report) -> str:
    week_rows = "".join(
        f'<tr data-week="{iso_week(w.week)}"><td>{iso_week(w.week)}</td>'
        + _cell(None if w.counts.suppressed else str(w.counts.developers))
        + _cell(None if w.counts.suppressed else str(w.counts.runs))
        + _cell(_pct(w.counts))
        + "</tr>"
        for w in report.weeks
    )
    latest = report.weeks[-1].week
    flagged = [c for c in report.commands if c.regression]
    command_rows = []
    for c in [c for c in report.commands if c.week == latest]:
        change = "" if c.change is None else f"{c.change * 100:+.0f}%"
        flag = ' class="regression"' if c.regression else ""
        command_rows.append(
            f'<tr data-week="{iso_week(c.week)}" data-command="{escape(c.command)}">'
            f"<td>{escape(c.command)}</td>"
            + _cell(None if c.counts.suppressed else str(c.counts.developers))
            + _cell(None if c.counts.suppressed else str(c.counts.runs))
            + _cell(_pct(c.counts))
            + _cell(None if c.p50_ms is None else human(c.p50_ms))
            + _cell(None if c.p90_ms is None else human(c.p90_ms))
            + (_cell(None) if c.counts.suppressed else f"<td{flag}>{change}</td>")
            + "</tr>"
        )
    idle = ", ".join(
        f'<span data-idle="{escape(i.command)}">{escape(i.command)} '
        f"(last {iso_week(i.last_week)})</span>"
        for i in report.idle
    )
    shares = []
    for dimension in dict.fromkeys(s.dimension for s in report.shares):
        parts = [
            f'<span class="suppressed">{OTHER}</span>'
            if s.value is None
            else f"{escape(s.value or '(unset)')}: {s.developers} developers"
            for s in report.shares
            if s.dimension == dimension
        ]
        shares.append(f"<li><b>{escape(dimension)}</b>: {'; '.join(parts)}</li>")
    head = "<tr><th>{}</th><th>developers</th><th>runs</th><th>failed</th>"
    return (
        '<section id="weeks"><h2>Per week</h2><div class="scroll"><table id="week-table">'
        + head.format("week")
        + f"</tr>{week_rows}</table></div></section>"
        f'<section id="commands"><h2>Commands in {iso_week(latest)}</h2>'
        '<p class="note">Change: p50 against the week before. Every week: --json or --csv.</p>'
        '<div class="scroll"><table id="command-table">'
        + head.format("command")
        + "<th>p50</th><th>p90</th><th>change</th></tr>"
        + "".join(command_rows)
        + "</table></div></section>"
        '<section id="regressions"><h2>Regressions</h2><ul>'
        + "".join(
            f'<li data-week="{iso_week(c.week)}" data-command="{escape(c.command)}">'
            f"{iso_week(c.week)}: {escape(c.command)}, p50 {human(c.p50_ms or 0)} "
            f"({(c.change or 0) * 100:+.0f}%)</li>"
            for c in flagged
        )
        + ("" if flagged else "<li>None.</li>")
        + "</ul></section>"
        f'<section id="idle"><h2>Not run lately</h2><p>{idle or "Every command ran lately."}'
        '</p></section><section id="shares"><h2>Who runs it</h2><ul>'
        + "".join(shares)
        + "</ul></section>"
    )


def page(report: Report, title: str = "Team report") -> str:
    """The whole page; no external resource, and only its own script may run."""
    k = report.options.min_developers
    summary = escape(summary_line(report))
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = (
        f"Numbers drawn from fewer than {k} developers are suppressed, and so are the numbers "
        "that would let one be worked out from a total. "
        f"Made {made} by send_metrics report --html."
    )
    content = "".join(_sections(report)) if report.weeks else '<p id="empty">No runs.</p>'
    body = (
        f'<h1>{escape(title)}</h1><p class="sub">{summary}</p>'
        f'<p class="note">{escape(note)}</p>{content}'
    )
    # Names are escaped for HTML; their control characters are made visible too, so that
    # `--html -` on a terminal runs no escape sequence.
    return printable(document(title, _CSS, body, _SCRIPT), keep="\n\t")
