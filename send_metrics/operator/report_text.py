"""What `report` prints: the terminal summary, `--json` and `--csv`, from `report.Report`.
A suppressed number is never printed: the terminal shows `SUPPRESSED_MARK`, JSON a null with
`"suppressed": true`, CSV the word `suppressed`. Names come from senders: the terminal gets
them with control characters made visible, the CSV with formula starts neutralised; JSON keeps
them exact."""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections.abc import Sequence
from datetime import date
from typing import Any

from send_metrics.local.stats_text import human
from send_metrics.operator.report import Counts, Report

REPORT_FORMAT = 2  # raised when a `--json` key or `--csv` column changes meaning or goes away
SUPPRESSED = "suppressed"
SUPPRESSED_MARK = "supp"
CSV_COLUMNS = (
    "section",
    "week",
    "name",
    "developers",
    "runs",
    "failures",
    "failure_rate",
    "p50_ms",
    "p90_ms",
    "critical_share",
    "change",
    "regression",
)
TOP_TARGETS = 10
OTHER = "other (suppressed)"  # the hidden values of a breakdown, together, nameless
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def printable(name: str, keep: str = "") -> str:
    """A sender's name for a terminal: C0, DEL and C1 controls (escape sequences, bells)
    written as visible `\\xNN` text; `keep`: controls left as they are (a page's newlines)."""
    return _CONTROL.sub(
        lambda m: m.group() if m.group() in keep else f"\\x{ord(m.group()):02x}", name
    )


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a `'`
    in front (OWASP's advice against formula injection); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def iso_week(monday: date) -> str:
    """`2026-W49`: the ISO week a Monday starts."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _pct(value: float | None) -> str:
    return SUPPRESSED_MARK if value is None else f"{value * 100:.1f}%"


def _pct0(value: float | None) -> str:
    return SUPPRESSED_MARK if value is None else f"{value * 100:.0f}%"


def _n(value: int | None) -> str:
    return SUPPRESSED_MARK if value is None else str(value)


def _ms(value: float | None) -> str:
    return SUPPRESSED_MARK if value is None else human(value)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r)
        ).rstrip()
        for r in [header, *rows]
    ]


def summary_line(report: Report, app: str = "") -> str:
    """One line: the period and the team's totals (or why they are hidden)."""
    opts, total = report.options, report.total
    span = f"{opts.since:%Y-%m-%d %H:%M} to {opts.until:%Y-%m-%d %H:%M} UTC"
    who = f"{app}: " if app else ""
    if total.runs == 0:
        return f"{who}{span}: no runs recorded."
    if total.suppressed and all(w.counts.suppressed for w in report.weeks):
        return (
            f"{who}{span}: fewer than {opts.min_developers} developers in all; every number "
            "is suppressed."
        )
    if total.suppressed:
        return f"{who}{span}: totals suppressed (they would add up a suppressed week)."
    return (
        f"{who}{span}: {total.developers} developers, {total.runs} runs, "
        f"{_pct(total.failure_rate)} failed."
    )


def text(report: Report, app: str = "", width: int = 80) -> list[str]:
    """The terminal report: weeks, the latest week's commands, regressions, slowest targets,
    idle commands, breakdowns; and what `supp` means."""
    k = report.options.min_developers
    lines = textwrap.wrap(summary_line(report, app), width)
    if not report.weeks:
        return lines
    lines += textwrap.wrap(
        f"Cells drawn from fewer than {k} developers are shown as {SUPPRESSED_MARK!r}, and so "
        "are the cells that would let them be worked out from a total.",
        width,
    )
    lines += ["", "Per ISO week (UTC):"]
    lines += _table(
        ("week", "developers", "runs", "failed"),
        [
            (
                iso_week(w.week),
                _n(w.counts.developers),
                _n(w.counts.runs),
                _pct(w.counts.failure_rate),
            )
            for w in report.weeks
        ],
    )
    latest = report.weeks[-1].week
    rows = [
        (
            printable(c.command),
            _n(c.counts.developers),
            _n(c.counts.runs),
            _pct(c.counts.failure_rate),
            _ms(c.p50_ms),
            _ms(c.p90_ms),
            "" if c.change is None else f"{round(c.change * 100) or 0:+d}%" + (" !" * c.regression),
        )
        for c in report.commands
        if c.week == latest
    ]
    lines += ["", f"Commands in {iso_week(latest)} (change: p50 against the week before):"]
    lines += _table(("command", "developers", "runs", "failed", "p50", "p90", "change"), rows)
    flagged = [c for c in report.commands if c.regression]
    opts = report.options
    lines += [
        "",
        f"Regressions (p50 up by more than {opts.regression * 100:.0f}% on the week before, "
        f"at least {opts.regression_runs} runs in both): " + ("none." if not flagged else ""),
    ]
    for c in flagged:
        lines.append(
            f"  {iso_week(c.week)}  {printable(c.command)}  "
            f"p50 {_ms(c.p50_ms)} ({c.change or 0:+.0%})"
        )
    shown = sorted(
        (t for t in report.targets if not t.suppressed), key=lambda t: (-(t.p50_ms or 0), t.name)
    )
    hidden = len(report.targets) - len(shown)
    if report.targets:
        lines += ["", "Slowest make targets (by p50, over the period):"]
        lines += _table(
            ("target", "p50", "p90", "critical path"),
            [
                (printable(t.name), _ms(t.p50_ms), _ms(t.p90_ms), _pct0(t.critical_share))
                for t in shown[:TOP_TARGETS]
            ],
        )
        if hidden:
            lines.append(f"  and {hidden} target(s) run by fewer than {k} developers (suppressed)")
    idle_weeks = (report.options.until - report.options.idle_since).days // 7 + 1
    lines += ["", f"Not run by anyone in the last {idle_weeks} week(s): "]
    lines[-1] += (
        ", ".join(f"{printable(i.command)} (last {iso_week(i.last_week)})" for i in report.idle)
        or "none."
    )
    lines += ["", "Who runs it (developers):"]
    for dimension in dict.fromkeys(s.dimension for s in report.shares):
        parts = [
            OTHER if s.value is None else f"{printable(s.value) or '(unset)'} {s.developers}"
            for s in report.shares
            if s.dimension == dimension
        ]
        lines.append(f"  {dimension}: " + ", ".join(parts))
    return lines


def _counts(c: Counts) -> dict[str, Any]:
    rate = c.failure_rate
    return {
        "developers": c.developers,
        "runs": c.runs,
        "failures": c.failures,
        "failure_rate": None if rate is None else round(rate, 4),
        "suppressed": c.suppressed,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def as_dict(report: Report) -> dict[str, Any]:
    """The report as its documented JSON object."""
    opts = report.options
    return {
        "format": REPORT_FORMAT,
        "since": opts.since.isoformat(timespec="seconds"),
        "until": opts.until.isoformat(timespec="seconds"),
        "idle_since": opts.idle_since.isoformat(timespec="seconds"),
        "min_developers": opts.min_developers,
        "regression": {"threshold": opts.regression, "min_runs": opts.regression_runs},
        "total": _counts(report.total),
        "weeks": [
            {"week": iso_week(w.week), "monday": w.week.isoformat(), **_counts(w.counts)}
            for w in report.weeks
        ],
        "commands": [
            {
                "week": iso_week(c.week),
                "command": c.command,
                **_counts(c.counts),
                "p50_ms": _round(c.p50_ms),
                "p90_ms": _round(c.p90_ms),
                "change": None if c.change is None else round(c.change, 4),
                "regression": c.regression,
            }
            for c in report.commands
        ],
        "targets": [
            {
                "name": t.name,
                "p50_ms": _round(t.p50_ms),
                "p90_ms": _round(t.p90_ms),
                "critical_share": t.critical_share,
                "suppressed": t.suppressed,
            }
            for t in report.targets
        ],
        "idle": [{"command": i.command, "last_week": iso_week(i.last_week)} for i in report.idle],
        "breakdowns": {
            dimension: [
                {"value": s.value, "developers": s.developers, "suppressed": s.suppressed}
                for s in report.shares
                if s.dimension == dimension
            ]
            for dimension in dict.fromkeys(s.dimension for s in report.shares)
        },
    }


def as_json(report: Report) -> str:
    """`report --json`."""
    return json.dumps(as_dict(report), indent=2)


def as_csv(report: Report) -> str:
    """`report --csv`: one row per cell, its section first; hidden numbers read `suppressed`."""
    doc = as_dict(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def row(section: str, item: dict[str, Any], week: str = "", name: str = "") -> None:
        hidden = item.get("suppressed", False)
        values = {"section": section, "week": week, "name": name, **item}
        writer.writerow(
            [
                SUPPRESSED
                if hidden and column not in ("section", "week", "name") and column in item
                else ("" if values.get(column) is None else csv_safe(values.get(column)))
                for column in CSV_COLUMNS
            ]
        )

    row("total", doc["total"])
    for w in doc["weeks"]:
        row("week", w, w["week"])
    for c in doc["commands"]:
        row("command", c, c["week"], c["command"])
    for t in doc["targets"]:
        row("target", {k: v for k, v in t.items() if k != "name"}, name=t["name"])
    for i in doc["idle"]:
        row("idle", {}, i["last_week"], i["command"])
    for dimension, values in doc["breakdowns"].items():
        for s in values:
            name = OTHER if s["value"] is None else s["value"]
            row(dimension, {k: v for k, v in s.items() if k != "value"}, name=name)
    return out.getvalue()
