"""What `stats` prints: the terminal table and detail, CSV and JSON, from the data in stats.py."""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from send_metrics.stats import (
    DEFAULT_TREND_DAYS,
    CommandStats,
    Detail,
    Period,
    Report,
    Run,
)

STATS_FORMAT = 1  # raised when a `--json` key or `--csv` column changes meaning or goes away
CSV_COLUMNS = (
    "command",
    "runs",
    "failures",
    "success_rate",
    "total_ms",
    "median_ms",
    "p95_ms",
    "last_run",
    "recent_median_ms",
    "previous_median_ms",
    "trend",
    "change",
)
CSV_RUN_COLUMNS = ("command", "start_time", "duration_ms", "failed")
EMPTY = "No runs recorded yet."  # the next line says why, and the next step
_SPARKS = "▁▂▃▄▅▆▇█"
_ASCII_SPARKS = "_.,-=+*#"
_RED, _GREEN, _BOLD, _DIM = "31", "32", "1", "2"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Style(NamedTuple):
    """How the terminal takes our text: its width, colour, and whether it can show Unicode."""

    width: int = 80
    color: bool = False
    unicode: bool = True

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text


def human(ms: float) -> str:
    """A duration short enough for a table cell: 105ms, 1.23s, 12.3s, 3m05s, 2h03m, 1d04h."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def sparkline(values: tuple[float, ...] | list[float], style: Style) -> str:
    """One character per value, scaled between the smallest and the largest."""
    if not values:
        return ""
    marks = _SPARKS if style.unicode else _ASCII_SPARKS
    low, high = min(values), max(values)
    if high - low <= 0:
        return marks[len(marks) // 2 - 1] * len(values)
    top = len(marks) - 1
    return "".join(marks[round((v - low) / (high - low) * top)] for v in values)


def when(moment: datetime | str) -> str:
    text = moment if isinstance(moment, str) else moment.isoformat()
    return text[:16].replace("T", " ")


def _change(c: CommandStats, style: Style) -> str:
    if c.trend is None:
        return "-"
    if c.change is None:
        arrow = "new"
    else:
        up, down, flat = ("↑", "↓", "→") if style.unicode else ("+", "-", "=")
        arrow = {"slower": up, "faster": down, "steady": flat}[c.trend]
        arrow += f"{abs(c.change) * 100:.0f}%"
    color = {"slower": _RED, "faster": _GREEN}.get(c.trend, "")
    return style.paint(arrow, color) if color else arrow


def _fit(text: str, width: int, style: Style) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ("…" if style.unicode else "~")


def _period_line(window: Period, report: Report) -> str:
    runs = len(report.runs)
    failed = sum(r.failed for r in report.runs)
    total = human(sum(r.duration_ms for r in report.runs))
    what = f"{runs} run{'s' * (runs != 1)} of {len(report.commands)} "
    what += f"command{'s' * (len(report.commands) != 1)}, {failed} failed, {total} in all"
    if window.since is None:
        return f"All recorded runs: {what}."
    return f"Runs since {when(window.since)} UTC: {what}."


def _trend_note(window: Period, style: Style) -> str:
    up, down = ("↑", "↓") if style.unicode else ("+", "-")
    span = (
        f"the last {DEFAULT_TREND_DAYS} days"
        if window.since is None
        else f"since {when(window.since)}"
    )
    return (
        f"trend: median {span} against the same length before it "
        f"({up} slower, {down} faster, by more than 10%); recent: the last runs, oldest first"
    )


def table(report: Report, style: Style, recorded: int) -> list[str]:
    """The `stats` overview: one line per command, the slowest runs, what the trend means."""
    if not report.commands:
        if not recorded:
            return [EMPTY]
        return [
            f"No runs since {when(report.period.since or report.period.until)} UTC; "
            f"{recorded} recorded in all (try a longer --since)."
        ]
    header = (
        "command",
        "runs",
        "failures",
        "ok",
        "median",
        "p95",
        "total",
        "trend",
        "recent",
        "last run (UTC)",
    )
    rows = [
        (
            c.command,
            str(c.runs),
            str(c.failures),
            f"{c.success_rate * 100:.0f}%",
            human(c.median_ms),
            human(c.p95_ms),
            human(c.total_ms),
            _change(c, style),
            sparkline(c.recent_ms, style),
            when(c.last_run),
        )
        for c in report.commands
    ]
    lines = [*textwrap.wrap(_period_line(report.period, report), style.width), ""]
    lines += _columns(header, rows, style, (9, 8, 5, 3, 7, 6), failures=2, left=(0, 8, 9), flex=8)
    lines += ["", "Slowest runs:"]
    dated = style.width >= 56  # the start time goes first when the line is short of room
    for run in report.slowest:
        status = style.paint("failed", _RED) if run.failed else "ok    "
        text = f"  {human(run.duration_ms):>7}  " + (f"{when(run.start_time)}  " if dated else "")
        text += f"{status}  "
        lines.append(text + _fit(run.command, max(8, style.width - _visible(text)), style))
    lines.append("")
    lines += [
        style.paint(t, _DIM) for t in textwrap.wrap(_trend_note(report.period, style), style.width)
    ]
    return lines


def _visible(cell: str) -> int:
    """A cell's width on screen: colour codes take none."""
    return len(_ANSI.sub("", cell)) if "\x1b" in cell else len(cell)


def _columns(
    header: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    style: Style,
    droppable: tuple[int, ...] = (),
    failures: int | None = None,
    left: tuple[int, ...] = (0,),
    flex: int | None = None,
) -> list[str]:
    """Aligned columns, narrowed to the terminal: the `droppable` columns go in order (the
    `flex` one is first cut from its left, keeping at least 6 characters), then the first
    column is cut to fit; numbers align right, the `left` columns left."""
    keep = list(range(len(header)))
    gap = 2

    def widths() -> dict[int, int]:
        return {i: max([len(header[i])] + [_visible(r[i]) for r in rows]) for i in keep}

    w = widths()
    for column in droppable:
        over = sum(w[i] for i in keep[1:]) + gap * (len(keep) - 1) + min(w[0], 20) - style.width
        if over <= 0:
            break
        if column == flex and w[column] - over >= 6:
            w[column] -= over
            break
        keep.remove(column)
        w = {i: w[i] for i in keep}
    rest = sum(w[i] for i in keep[1:]) + gap * (len(keep) - 1)
    w[0] = max(4, min(w[0], style.width - rest))

    def line(cells: tuple[str, ...], head: bool) -> str:
        out = []
        for i in keep:
            cell = cells[i]
            if i == 0:
                cell = _fit(cell, w[i], style)
            elif i == flex:
                cell = cell[-w[i] :]
            if i == failures and not head and cell != "0":
                cell = style.paint(cell, _RED)
            pad = " " * (w[i] - _visible(cell))
            out.append(cell + pad if i in left else pad + cell)
        text = (" " * gap).join(out).rstrip()
        return style.paint(text, _BOLD) if head else text

    return [line(header, True)] + [line(r, False) for r in rows]


def detail_text(found: Detail, command: str, window: Period, style: Style) -> list[str]:
    """`stats --command NAME`: its numbers, trend, days, last runs and the targets inside it
    (a command with runs: one without is a look-up that matched nothing)."""
    c = found.stats
    if c is None:
        return []
    since = "all recorded runs" if window.since is None else f"since {when(window.since)} UTC"
    failed = style.paint(str(c.failures), _RED) if c.failures else "0"
    head = [
        style.paint(command, _BOLD) + f" ({since}): {c.runs} runs, {failed} failed, "
        f"{c.success_rate * 100:.0f}% succeeded",
        f"median {human(c.median_ms)}, p95 {human(c.p95_ms)}, {human(c.total_ms)} in all",
    ]
    if c.trend is not None and c.previous_median_ms is not None and c.recent_median_ms is not None:
        head.append(
            f"trend: {_change(c, style)} {c.trend} (median {human(c.recent_median_ms)} against "
            f"{human(c.previous_median_ms)} the same length before)"
        )
    else:
        head.append("trend: no runs in the window before this one to compare with")
    lines = [part for text in head for part in textwrap.wrap(text, style.width)]
    lines.append("recent: " + sparkline(c.recent_ms[-max(1, style.width - 8) :], style))
    lines += ["", "Per day (UTC):"]
    day_rows = [
        (d.day, str(d.runs), str(d.failures), human(d.median_ms), human(d.total_ms))
        for d in found.days[-14:]
    ]
    lines += _columns(("day", "runs", "failures", "median", "total"), day_rows, style, (), 2)
    lines += ["", "Last runs (newest first):"]
    lines += _run_bars(found.runs[-10:][::-1], style)
    if found.breakdown:
        lines += [
            "",
            f"Inside it ({found.traced_runs} traced make run{'s' * (found.traced_runs != 1)}):",
        ]
        target_rows = [
            (
                t.name,
                str(t.runs),
                str(t.failures),
                human(t.median_ms),
                human(t.total_ms),
                str(t.critical),
            )
            for t in found.breakdown[:20]
        ]
        header = ("target", "runs", "failures", "median", "total", "critical path")
        lines += _columns(header, target_rows, style, (5,), 2)
    return lines


def _run_bars(runs: list[Run], style: Style) -> list[str]:
    if not runs:
        return []
    longest = max(r.duration_ms for r in runs) or 1.0
    room = max(0, min(40, style.width - 37))
    lines = []
    for run in runs:
        status = style.paint("failed", _RED) if run.failed else "ok    "
        bar = ("█" if style.unicode else "#") * max(1, round(run.duration_ms / longest * room))
        text = f"  {when(run.start_time)}  {human(run.duration_ms):>7}  {status}"
        lines.append(text + (f"  {bar}" if room else ""))
    return lines


def _number(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def command_json(c: CommandStats) -> dict[str, Any]:
    """A command's numbers as its documented JSON object (the CSV row has the same names)."""
    return {
        "command": c.command,
        "runs": c.runs,
        "failures": c.failures,
        "success_rate": round(c.success_rate, 4),
        "total_ms": _number(c.total_ms),
        "median_ms": _number(c.median_ms),
        "p95_ms": _number(c.p95_ms),
        "last_run": c.last_run,
        "recent_median_ms": _number(c.recent_median_ms),
        "previous_median_ms": _number(c.previous_median_ms),
        "trend": c.trend,
        "change": None if c.change is None else round(c.change, 4),
        "recent_ms": [_number(v) for v in c.recent_ms],
    }


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "command": run.command,
        "start_time": run.start_time,
        "duration_ms": _number(run.duration_ms),
        "failed": run.failed,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _period_json(window: Period) -> dict[str, Any]:
    return {
        "format": STATS_FORMAT,
        "since": None if window.since is None else _iso(window.since),
        "until": _iso(window.until),
        "trend_since": _iso(window.trend_since),
        "previous_since": _iso(window.previous_since),
    }


def report_json(report: Report) -> str:
    """`stats --json`: the period, one object per command, the slowest runs."""
    doc = {
        **_period_json(report.period),
        "total_runs": len(report.runs),
        "commands": [command_json(c) for c in report.commands],
        "slowest": [_run_json(r) for r in report.slowest],
    }
    return json.dumps(doc, indent=2)


def detail_json(found: Detail, command: str, window: Period) -> str:
    """`stats --command NAME --json`: its numbers, runs, days and inner targets."""
    doc = {
        **_period_json(window),
        "command": command,
        "stats": None if found.stats is None else command_json(found.stats),
        "runs": [_run_json(r) for r in found.runs],
        "days": [d._asdict() for d in found.days],
        "traced_runs": found.traced_runs,
        "breakdown": [t._asdict() for t in found.breakdown],
    }
    return json.dumps(doc, indent=2)


def report_csv(report: Report) -> str:
    """`stats --csv`: the header `CSV_COLUMNS`, then one row per command."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in report.commands:
        doc = command_json(c)
        writer.writerow(["" if doc[k] is None else doc[k] for k in CSV_COLUMNS])
    return out.getvalue()


def runs_csv(runs: list[Run]) -> str:
    """`stats --command NAME --csv`: the header `CSV_RUN_COLUMNS`, then one row per run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_RUN_COLUMNS)
    for run in runs:
        writer.writerow([run.command, run.start_time, _number(run.duration_ms), int(run.failed)])
    return out.getvalue()
