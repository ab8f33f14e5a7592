"""Every number of `send_metrics report`, defined once, as SQL over the two relations of the
operator's store: `events` (one row per run) and `targets` (one row per make target of a run).

The texts are written in DuckDB's dialect and run as they are on the embedded store; on
ClickHouse the same texts are transpiled by SQLGlot (`clickhouse.py`), with `events` and
`targets` given by our table or by the OpenTelemetry exporter's `otel_logs`. Only plain SQL is
used (window functions, CASE, COUNT DISTINCT) so that both engines compute the same values:
percentiles are nearest-rank (see PICKS), the same on both engines.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

# A run failed unless it exited 0 (an unknown status, a signal, counts as failed, as in stats).
FAILED = "CASE WHEN exit_code = 0 THEN 0 ELSE 1 END"
# A target failed when its first failing line said so (NULL: interrupted, not failed).
TARGET_FAILED = "CASE WHEN exit_code <> 0 THEN 1 ELSE 0 END"
# The ISO week (its Monday) a run started in, UTC.
WEEK = "CAST(DATE_TRUNC('week', start_time) AS DATE)"
# The values the operator's breakdowns count, by name.
DIMENSIONS = {
    "os": "os",
    "arch": "arch",
    "ci": "CASE WHEN ci THEN 'ci' ELSE 'local' END",
    "tool_version": "tool_version",
    "app_version": "app_version",
}


PERCENTILES = {"p50": 0.5, "p90": 0.9}
# Nearest rank: the value at position ceil(q * n) of the sorted durations, a duration really
# observed (as `stats` shows). DuckDB's QUANTILE_DISC is exactly that; on ClickHouse the
# transpiler writes the same rank out (`clickhouse.transpile`), since quantileExactLow
# differs where q * n is whole.
PICKS = ", ".join(f"QUANTILE_DISC(duration_ms, {q}) AS {name}" for name, q in PERCENTILES.items())


def _literal(moment: datetime) -> str:
    """A UTC instant as a SQL timestamp literal (our own values, never user text)."""
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


class Queries(NamedTuple):
    """The report's SQL texts for one period, `since` inclusive to `until` exclusive (UTC)."""

    total: str
    weeks: str
    commands: str
    targets: str
    idle: str
    dimensions: dict[str, str]


def queries(since: datetime, until: datetime, idle_since: datetime) -> Queries:
    """The SQL of every number for a period; `idle_since`: commands not run since then."""
    period = f"start_time >= {_literal(since)} AND start_time < {_literal(until)}"
    counts = (
        f"COUNT(DISTINCT anonymous_id) AS developers, COUNT(*) AS runs, SUM({FAILED}) AS failures"
    )
    total = f"SELECT {counts} FROM events WHERE {period}"
    weeks = (
        f"SELECT week, {counts} FROM (SELECT {WEEK} AS week, anonymous_id, exit_code "
        f"FROM events WHERE {period}) AS base GROUP BY week ORDER BY week"
    )
    commands = (
        f"SELECT week, command, {counts}, {PICKS} FROM ("
        f"SELECT {WEEK} AS week, command, anonymous_id, exit_code, duration_ms "
        f"FROM events WHERE {period}) AS base GROUP BY week, command ORDER BY week, command"
    )
    targets = (
        "SELECT name, COUNT(DISTINCT anonymous_id) AS developers, COUNT(*) AS runs, "
        f"SUM({TARGET_FAILED}) AS failures, SUM(CASE WHEN critical THEN 1 ELSE 0 END) AS critical, "
        f"{PICKS} FROM targets WHERE {period} GROUP BY name ORDER BY name"
    )
    idle = (
        "SELECT command, CAST(DATE_TRUNC('week', MAX(start_time)) AS DATE) AS last_week, "
        f"COUNT(DISTINCT anonymous_id) AS developers FROM events WHERE {period} "
        f"GROUP BY command HAVING MAX(start_time) < {_literal(idle_since)} ORDER BY command"
    )
    dimensions = {
        name: (
            f"SELECT {expr} AS value, COUNT(DISTINCT anonymous_id) AS developers, "
            f"COUNT(*) AS runs FROM events WHERE {period} GROUP BY value ORDER BY value"
        )
        for name, expr in DIMENSIONS.items()
    }
    return Queries(total, weeks, commands, targets, idle, dimensions)
