"""The developer's own numbers for `stats`: runs per command, trends and breakdowns, as data."""

from __future__ import annotations

import difflib
import math
import os
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from send_metrics import store
from send_metrics.files import data_dir
from send_metrics.output import warn

if TYPE_CHECKING:
    from send_metrics.config import Settings

Trend = Literal["slower", "faster", "steady"]
TREND_THRESHOLD = 0.10  # the median must move by more than 10 % to count as a trend
DEFAULT_TREND_DAYS = 7  # without --since, the trend compares the last 7 days with the 7 before
RECENT_RUNS = 20  # durations in a command's sparkline
SLOWEST_RUNS = 5
# The event field the make tracing fills with the targets that ran inside a wrapped make run:
# a list of {"name", "start_ms", "duration_ms", "exit_code", "lines", "critical"}; read
# defensively, since older events lack it and a newer schema may add keys.
BREAKDOWN_FIELD = "make_targets"
# Targets whose names could be paths are never named: one {"count", "duration_ms", "critical"}
# object per run, shown as one entry under this name (make target names hold no spaces).
FILE_TARGETS_FIELD = "make_file_targets"
FILE_TARGETS = "(file targets)"


class Run(NamedTuple):
    """One recorded run, as the history holds it."""

    command: str
    start: datetime
    start_time: str
    duration_ms: float
    failed: bool


class Period(NamedTuple):
    """The runs counted: `since` (inclusive, UTC) up to now; the trend's two windows."""

    since: datetime | None
    until: datetime
    trend_since: datetime
    previous_since: datetime


class CommandStats(NamedTuple):
    """One command over the period; its `--json` object and `--csv` row have these names."""

    command: str
    runs: int
    failures: int
    success_rate: float
    total_ms: float
    median_ms: float
    p95_ms: float
    last_run: str
    recent_median_ms: float | None
    previous_median_ms: float | None
    trend: Trend | None
    change: float | None
    recent_ms: tuple[float, ...]


class Report(NamedTuple):
    """Everything `stats` shows: the period, each command, the slowest runs."""

    period: Period
    runs: list[Run]
    commands: list[CommandStats]
    slowest: list[Run]


class Day(NamedTuple):
    """One UTC day of one command's runs."""

    day: str
    runs: int
    failures: int
    median_ms: float
    total_ms: float


class TargetTime(NamedTuple):
    """A target inside traced make runs of one command, summed over those runs."""

    name: str
    runs: int
    median_ms: float
    total_ms: float
    failures: int
    critical: int


class Detail(NamedTuple):
    """`stats --command NAME`: the command's numbers, its runs over time, its inner targets."""

    stats: CommandStats | None
    runs: list[Run]
    days: list[Day]
    breakdown: list[TargetTime]
    traced_runs: int


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`7d`, `12h`, `2w`, a date (`2026-11-01`, from its 00:00 UTC) or an ISO date-time (UTC
    unless it has an offset) as an aware UTC datetime; ValueError for anything else."""
    now = now or datetime.now(UTC)
    value = text.strip()
    units = {"h": 3600, "d": 86400, "w": 7 * 86400}
    try:
        if len(value) >= 2 and value[-1].lower() in units and value[:-1].isdigit():
            return now - timedelta(seconds=int(value[:-1]) * units[value[-1].lower()])
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not a period: use 7d, 30d, 12h, 2w, a date (2026-11-01) "
            "or a date-time (2026-11-01T09:00, UTC unless an offset is given)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def period(since: datetime | None, now: datetime | None = None) -> Period:
    """The period from `since` to now, and the trend's windows: the period itself (or the last
    7 days without `since`) against the same length just before it."""
    now = now or datetime.now(UTC)
    trend_since = since if since is not None else now - timedelta(days=DEFAULT_TREND_DAYS)
    try:
        previous_since = trend_since - (now - trend_since)
    except OverflowError:  # a period reaching back to year 1 has nothing before it
        previous_since = datetime.min.replace(tzinfo=UTC)
    return Period(since, now, trend_since, previous_since)


def window(since: str | None) -> Period:
    """The period `--since` names (all history without it), measured from one `now`."""
    now = datetime.now(UTC)
    return period(parse_since(since, now) if since is not None else None, now)


def load_runs(settings: Settings) -> list[Run]:
    """Every run in the local history, oldest first; an absent store is an empty history."""
    path = store.db_path(data_dir(settings.app))
    if not os.path.exists(path):  # False, not an error, for an unreadable folder
        return []
    db = store.Store(path)
    if db.notice:  # the file was not a database: set aside, so the history starts anew
        warn(db.notice)
    try:
        rows = db.history()
    finally:
        db.close()
    return runs_from_rows(rows)


def runs_from_rows(rows: list[tuple[str, str, float, int]]) -> list[Run]:
    """Rows of the history table as Runs; a row whose time cannot be read is left out."""
    runs = []
    for command, start_time, duration, failed in rows:
        try:
            start = datetime.fromisoformat(start_time)
        except (TypeError, ValueError):
            continue
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        runs.append(Run(command, start, start_time, float(duration), bool(failed)))
    runs.sort(key=lambda r: r.start)
    return runs


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was really observed."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def trend(recent: float | None, previous: float | None) -> tuple[Trend | None, float | None]:
    """How a median moved: `slower`/`faster` past the threshold, else `steady`; and by how
    much, as a fraction of the previous median. None when a window has no runs."""
    if recent is None or previous is None:
        return None, None
    if previous <= 0:
        return ("steady", 0.0) if recent <= 0 else ("slower", None)
    change = recent / previous - 1
    if recent > previous * (1 + TREND_THRESHOLD):
        return "slower", change
    if recent < previous * (1 - TREND_THRESHOLD):
        return "faster", change
    return "steady", change


def report(runs: list[Run], window: Period) -> Report:
    """Per command over the period (busiest first), with its trend; the slowest runs."""
    counted = [r for r in runs if window.since is None or r.start >= window.since]
    by_command: dict[str, list[Run]] = {}
    for run in counted:
        by_command.setdefault(run.command, []).append(run)
    recent: dict[str, list[float]] = {}
    previous: dict[str, list[float]] = {}
    for run in runs:
        if run.start >= window.trend_since:
            recent.setdefault(run.command, []).append(run.duration_ms)
        elif run.start >= window.previous_since:
            previous.setdefault(run.command, []).append(run.duration_ms)
    commands = [
        summarise(command, these, recent.get(command), previous.get(command))
        for command, these in by_command.items()
    ]
    commands.sort(key=lambda c: (-c.total_ms, c.command))
    slowest = sorted(counted, key=lambda r: (-r.duration_ms, r.start))[:SLOWEST_RUNS]
    return Report(window, counted, commands, slowest)


def summarise(
    command: str,
    runs: list[Run],
    recent: list[float] | None = None,
    previous: list[float] | None = None,
) -> CommandStats:
    """One command's numbers from its runs (oldest first) and the trend windows' durations."""
    durations = sorted(r.duration_ms for r in runs)
    failures = sum(r.failed for r in runs)
    recent_median = statistics.median(recent) if recent else None
    previous_median = statistics.median(previous) if previous else None
    direction, change = trend(recent_median, previous_median)
    return CommandStats(
        command=command,
        runs=len(runs),
        failures=failures,
        success_rate=(len(runs) - failures) / len(runs),
        total_ms=sum(durations),
        median_ms=statistics.median(durations),
        p95_ms=percentile(durations, 0.95),
        last_run=runs[-1].start_time,
        recent_median_ms=recent_median,
        previous_median_ms=previous_median,
        trend=direction,
        change=change,
        recent_ms=tuple(r.duration_ms for r in runs[-RECENT_RUNS:]),
    )


def detail(report_: Report, command: str, events: list[dict[str, Any]]) -> Detail:
    """One command in detail: its numbers, runs and days in the period, and the targets
    inside its traced make runs (from `events`, the recorded events of its runs)."""
    runs = [r for r in report_.runs if r.command == command]
    found = next((c for c in report_.commands if c.command == command), None)
    per_day: dict[str, list[Run]] = {}
    for run in runs:
        per_day.setdefault(run.start.date().isoformat(), []).append(run)
    days = [
        Day(
            day,
            len(these),
            sum(r.failed for r in these),
            statistics.median(r.duration_ms for r in these),
            sum(r.duration_ms for r in these),
        )
        for day, these in sorted(per_day.items())
    ]
    since = report_.period.since
    in_period = [e for e in events if since is None or _event_start(e) >= since]
    breakdown, traced = make_breakdown(in_period)
    return Detail(found, runs, days, breakdown, traced)


def _event_start(event: dict[str, Any]) -> datetime:
    try:
        start = datetime.fromisoformat(str(event.get("start_time")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def make_breakdown(events: list[dict[str, Any]]) -> tuple[list[TargetTime], int]:
    """The targets inside traced make runs, by total time; and how many runs were traced.
    Entries that are not what the make tracing writes are skipped, never an error."""
    durations: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    critical: dict[str, int] = {}
    traced = 0
    for event in events:
        targets = event.get(BREAKDOWN_FIELD)
        files = event.get(FILE_TARGETS_FIELD)
        if not isinstance(targets, list) and not isinstance(files, dict):
            continue
        traced += 1
        if isinstance(files, dict) and _is_number(files.get("duration_ms")):
            files = {
                **files,
                "name": FILE_TARGETS,
                "critical": _is_number(files.get("critical")) and files["critical"] > 0,
            }
            targets = [*(targets if isinstance(targets, list) else []), files]
        for target in targets if isinstance(targets, list) else []:
            if not isinstance(target, dict):
                continue
            name = target.get("name")
            duration = target.get("duration_ms")
            if not isinstance(name, str) or not isinstance(duration, int | float):
                continue
            if not _is_number(duration):
                continue
            durations.setdefault(name, []).append(float(duration))
            exit_code = target.get("exit_code")
            failures[name] = failures.get(name, 0) + int(_is_number(exit_code) and exit_code != 0)
            critical[name] = critical.get(name, 0) + int(target.get("critical") is True)
    breakdown = [
        TargetTime(
            name,
            len(values),
            statistics.median(values),
            sum(values),
            failures[name],
            critical[name],
        )
        for name, values in durations.items()
    ]
    breakdown.sort(key=lambda t: (-t.total_ms, t.name))
    return breakdown, traced


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def command_events(settings: Settings, command: str) -> list[dict[str, Any]]:
    """The recorded events of one command, oldest first, for its make breakdown."""
    path = store.db_path(data_dir(settings.app))
    if not os.path.exists(path):  # False, not an error, for an unreadable folder
        return []
    db = store.Store(path)
    try:
        return db.events_of(command)
    finally:
        db.close()


TRACED_LOOKED_AT = 2000  # newest runs searched for the page's make breakdown


def traced_events(settings: Settings, window: Period, command: str | None) -> list[dict[str, Any]]:
    """The make runs with a breakdown among the newest TRACED_LOOKED_AT runs, in the period
    (and of `command`), for the page's breakdown chart."""
    path = store.db_path(data_dir(settings.app))
    if not os.path.exists(path):  # False, not an error, for an unreadable folder
        return []
    db = store.Store(path)
    try:
        events = db.recent_events(TRACED_LOOKED_AT)
    finally:
        db.close()
    found = []
    for event in events:
        if not event.get(BREAKDOWN_FIELD) or (command and event.get("command") != command):
            continue
        try:
            started = datetime.fromisoformat(str(event.get("start_time")))
        except ValueError:
            continue
        if window.since is None or started >= window.since:
            found.append(event)
    return found


def suggestions(command: str, known: list[str]) -> list[str]:
    """Recorded command names close to a mistyped one."""
    return difflib.get_close_matches(command, known, n=3, cutoff=0.6)


def no_match(what: str, name: str, known: list[str], hint: str) -> str:
    """The one line for a look-up that matched nothing: what was not found, the recorded names
    close to it, else `hint` (why nothing is recorded, or what is)."""
    close = suggestions(name, known)
    if close:
        return f"{what} {name!r}; did you mean {' or '.join(close)}?"
    return f"{what} {name!r}. {hint}"
