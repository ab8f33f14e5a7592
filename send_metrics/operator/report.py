"""`send_metrics report`: the team's numbers per ISO week, as data, with small cells suppressed.

The numbers come from the SQL in `report_sql` (one text per number), read through a `Reader`:
the embedded store's DuckDB connection, or ClickHouse (`clickhouse.py`). Everything the report
publishes passes through `suppression`: a hidden cell loses every number.

Only week cells and cells inside a week carry counts that add up; a number over the whole
period is published only when every week it sums is, and `--since` starts at a Monday, so the
difference of two reports' windows is always a sum of published week cells. Targets publish no
counts at all (percentiles and a rounded critical-path share), idle commands only their name
and last week, breakdowns only developer counts, and a hidden breakdown value's name goes into
one "other" row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from send_metrics.operator import report_sql
from send_metrics.operator.suppression import Member, primary, protect

# Reads the rows of one SQL text (in DuckDB's dialect; a ClickHouse reader transpiles it).
Reader = Callable[[str], Sequence[Sequence[Any]]]

DEFAULT_MIN_DEVELOPERS = 5
DEFAULT_WEEKS = 12
DEFAULT_IDLE_WEEKS = 4
DEFAULT_REGRESSION = 0.20  # p50 up by more than 20 % on the week before
DEFAULT_REGRESSION_RUNS = 10  # ... with at least this many runs in both weeks
TOTAL = "total"


class Options(NamedTuple):
    """What the operator asked for: the period, the threshold k, the regression rule."""

    since: datetime
    until: datetime
    idle_since: datetime
    min_developers: int = DEFAULT_MIN_DEVELOPERS
    regression: float = DEFAULT_REGRESSION
    regression_runs: int = DEFAULT_REGRESSION_RUNS


class Counts(NamedTuple):
    """Developers, runs and failures of a week or of the whole period; None when hidden."""

    developers: int | None
    runs: int | None
    failures: int | None

    @property
    def suppressed(self) -> bool:
        return self.runs is None

    @property
    def failure_rate(self) -> float | None:
        if self.runs is None or self.failures is None or not self.runs:
            return None
        return self.failures / self.runs


class Week(NamedTuple):
    """One ISO week (its Monday, UTC) of the whole team."""

    week: date
    counts: Counts


class CommandWeek(NamedTuple):
    """One command in one week; `change` against its previous week's p50, `regression` when
    that is past the threshold on enough runs. Every number None when suppressed."""

    week: date
    command: str
    counts: Counts
    p50_ms: float | None
    p90_ms: float | None
    change: float | None
    regression: bool


CRITICAL_STEP = 0.1  # a target's critical-path share is published to the nearest 10 %


class Target(NamedTuple):
    """A make target over the period, across everyone's traced runs: no count (it would add up
    with the command cells its runs are in), only its percentiles and the share of its runs on
    the critical path, rounded to `CRITICAL_STEP`; all None when fewer than k developers ran it."""

    name: str
    p50_ms: float | None
    p90_ms: float | None
    critical_share: float | None

    @property
    def suppressed(self) -> bool:
        return self.p50_ms is None


class Idle(NamedTuple):
    """A command run in the period but by nobody since `Options.idle_since`: its name and the
    week it last ran, no count."""

    command: str
    last_week: date


class Share(NamedTuple):
    """One value of a breakdown (OS, arch, CI or local, tool and app versions) and its distinct
    developers; `value` None: the values hidden in this breakdown, together, nameless."""

    dimension: str
    value: str | None
    developers: int | None

    @property
    def suppressed(self) -> bool:
        return self.developers is None


class Report(NamedTuple):
    """Everything `report` shows, already suppressed."""

    options: Options
    total: Counts
    weeks: list[Week]
    commands: list[CommandWeek]
    targets: list[Target]
    idle: list[Idle]
    shares: list[Share]

    @property
    def suppressed(self) -> int:
        """How many cells are hidden."""
        return (
            sum(w.counts.suppressed for w in self.weeks)
            + sum(c.counts.suppressed for c in self.commands)
            + sum(t.suppressed for t in self.targets)
            + sum(s.suppressed for s in self.shares)
        )


def monday(moment: datetime) -> datetime:
    """00:00 UTC of the Monday of the ISO week `moment` is in."""
    day = moment.astimezone(UTC).date()
    start = day - timedelta(days=day.weekday())
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def options(
    now: datetime,
    since: datetime | None = None,
    weeks: int = DEFAULT_WEEKS,
    idle_weeks: int = DEFAULT_IDLE_WEEKS,
    **rest: Any,
) -> Options:
    """The period: from the Monday of `since`'s ISO week (whole weeks only, so that two windows
    differ by whole week cells), or from the Monday `weeks` ISO weeks back (this one counted),
    up to `now`; commands are idle when nobody ran them in the last `idle_weeks` weeks."""
    this_week = monday(now)
    start = monday(since) if since is not None else this_week - timedelta(weeks=weeks - 1)
    idle_since = this_week - timedelta(weeks=idle_weeks - 1)
    return Options(start, now, idle_since, **rest)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _int(value: Any) -> int:
    return int(value or 0)


def _ms(value: Any) -> float | None:
    return None if value is None else float(value)


def _counts(developers: Any, runs: Any, failures: Any, hidden: bool) -> Counts:
    if hidden:
        return Counts(None, None, None)
    return Counts(_int(developers), _int(runs), _int(failures))


def build(read: Reader, opts: Options) -> Report:
    """Run every query, then suppress: weeks alone, the period only when all its weeks are
    shown, each week's commands and each breakdown (groups with a total), targets alone."""
    k = opts.min_developers
    sql = report_sql.queries(_naive(opts.since), _naive(opts.until), _naive(opts.idle_since))
    developers, runs, failures = (read(sql.total) or [(0, 0, 0)])[0]
    week_rows = [(_date(w), _int(d), _int(r), _int(f)) for w, d, r, f in read(sql.weeks)]
    # A week is hidden by its own count only, the same in every window; the period's total is
    # shown only as the sum of shown weeks (each of k developers or more, so it is too), and
    # adds nothing a difference of two windows could use.
    hidden_weeks = {w for w, d, _, _ in week_rows if primary(d, k)}
    total_hidden = bool(hidden_weeks)
    total = _counts(developers, runs, failures, total_hidden)
    weeks = [Week(w, _counts(d, r, f, w in hidden_weeks)) for w, d, r, f in week_rows]

    cells = [
        (_date(w), str(c), _int(d), _int(r), _int(f), _ms(p50), _ms(p90))
        for w, c, d, r, f, p50, p90 in read(sql.commands)
    ]
    hidden: set[Any] = set()
    for week in weeks:
        group = [Member((w, c), d, r) for w, c, d, r, *_ in cells if w == week.week]
        hidden |= protect(group, k, week.counts.suppressed)
    published = {(w, c): (p50, r) for w, c, _, r, _, p50, _ in cells if (w, c) not in hidden}
    commands = []
    for w, c, d, r, f, p50, p90 in cells:
        if (w, c) in hidden:
            commands.append(CommandWeek(w, c, Counts(None, None, None), None, None, None, False))
            continue
        change, flagged = _regression(p50, r, published.get((w - timedelta(weeks=1), c)), opts)
        commands.append(CommandWeek(w, c, _counts(d, r, f, False), p50, p90, change, flagged))

    targets = [
        Target(str(name), None, None, None)
        if primary(_int(d), k)
        else Target(str(name), _ms(p50), _ms(p90), _share(_int(crit), _int(r)))
        for name, d, r, _, crit, p50, p90 in read(sql.targets)
    ]
    idle = [Idle(str(c), _date(w)) for c, w, _ in read(sql.idle)]
    shares = []
    for name, text in sql.dimensions.items():
        rows = [("" if v is None else str(v), _int(d), _int(r)) for v, d, r in read(text)]
        gone = protect([Member(v, d, r) for v, d, r in rows], k, total_hidden)
        shares += [Share(name, v, d) for v, d, _ in rows if v not in gone]
        if gone:
            shares.append(Share(name, None, None))
    return Report(opts, total, weeks, commands, targets, idle, shares)


def _share(critical: int, runs: int) -> float:
    """The share of a target's runs on the critical path, to the nearest `CRITICAL_STEP`."""
    steps = round(critical / runs / CRITICAL_STEP) if runs else 0
    return round(steps * CRITICAL_STEP, 2)


def _regression(
    p50: float | None, runs: int, before: tuple[float | None, int] | None, opts: Options
) -> tuple[float | None, bool]:
    """How the p50 moved against the week before (both published), and whether that is a
    regression: up by more than the threshold with enough runs on both sides."""
    if before is None or p50 is None or before[0] is None or before[0] <= 0:
        return None, False
    change = p50 / before[0] - 1
    enough = runs >= opts.regression_runs and before[1] >= opts.regression_runs
    return change, enough and change > opts.regression


def _naive(moment: datetime) -> datetime:
    """UTC without a zone: the store's TIMESTAMP columns are UTC without one."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def duckdb_reader(connection: Any) -> Reader:
    """Read through a DuckDB connection (the embedded store's `open_for_report`)."""

    def read(sql: str) -> Sequence[Sequence[Any]]:
        rows: list[tuple[Any, ...]] = connection.execute(sql).fetchall()
        return rows

    return read
