#!/usr/bin/env python3
"""Benchmark: `send_metrics report` over 1,000,000 events (budget: 2 s on the embedded store).

The events are a team's half year: 400 developers of power-law activity, 150 commands of
power-law popularity, log-normal durations (a typical time per command from 0.2 s to minutes),
12 % failures, CI and local runs, 3 OS, 2 arches, tool and app versions; 40 % are traced make
runs with 1 to 8 targets each (a critical path among them), about 1.8 million target rows.

Two sources, each timed `--repeat` times, every figure printed as measured (nothing asserted):
- memory: the contract's `events` and `targets` tables in an in-memory DuckDB;
- store: the same rows written through the collector's embedded store (`EmbeddedStore`,
  compacted to its Parquet parts) and read by `open_for_report`, as `report --data` does
  (the time includes opening the store).

    python scripts/report_bench.py [--events 1000000] [--repeat 3] [--source memory,store]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from send_metrics.operator import report

BUDGET_S = 2.0
GENERATE = """
CREATE TABLE events AS
WITH draws AS (
  SELECT i, random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5,
         random() AS u6
  FROM range({events}) AS t(i)
), shaped AS (
  SELECT i,
    CAST(floor(400 * pow(u1, 2.2)) AS INTEGER) AS dev,
    CAST(floor(150 * pow(u2, 2.8)) AS INTEGER) AS cmd,
    TIMESTAMP '{now}' - to_microseconds(CAST(u3 * {span_us} AS BIGINT)) AS start_time,
    sqrt(-2 * ln(greatest(u4, 1e-12))) * cos(2 * pi() * u5) AS z,
    u6
  FROM draws
)
SELECT
  printf('%08x-0000-4000-8000-%012x', i, i) AS message_id,
  printf('%08x-1111-4000-8000-%012x', dev, dev) AS anonymous_id,
  'devstack' AS app,
  CASE dev % 3 WHEN 0 THEN '2026.10' WHEN 1 THEN '2026.11' ELSE '' END AS app_version,
  CASE WHEN dev % 5 = 0 THEN '0.2.0' ELSE '0.1.0' END AS tool_version,
  2 AS schema_version,
  'cmd-' || lpad(CAST(cmd AS VARCHAR), 3, '0') AS command,
  CASE WHEN cmd % 10 = 9 THEN 'command' ELSE 'make' END AS command_type,
  start_time,
  round(200 * pow(3, cmd % 7) * exp(0.7 * z), 3) AS duration_ms,
  CASE WHEN u6 < 0.88 THEN 0 WHEN u6 < 0.90 THEN NULL WHEN u6 < 0.97 THEN 2 ELSE 1 END
    AS exit_code,
  u6 >= 0.88 AND u6 < 0.90 AS interrupted,
  CASE WHEN dev % 10 < 6 THEN 'linux' WHEN dev % 10 < 9 THEN 'darwin' ELSE 'windows' END AS os,
  CASE WHEN dev % 4 = 0 THEN 'arm64' ELSE 'amd64' END AS arch,
  dev % 13 = 0 AS ci,
  start_time AS received_at
FROM shaped
"""
TARGETS = """
CREATE TABLE targets AS
SELECT message_id, anonymous_id, start_time, command,
  'step-' || lpad(CAST((hash(command) % 40 + k * 3) % 300 AS VARCHAR), 3, '0') AS name,
  round(duration_ms / n * (0.4 + 0.6 * random()), 3) AS duration_ms,
  CASE WHEN k = n - 1 THEN exit_code ELSE 0 END AS exit_code,
  k = 0 OR random() < 0.4 AS critical,
  CASE WHEN random() < 0.8 THEN 0 ELSE 1 END AS depth
FROM (
  SELECT *, 1 + CAST(hash(message_id) % 8 AS INTEGER) AS n FROM events
  WHERE command_type = 'make' AND hash(message_id) % 100 < 45
) AS traced, range(8) AS r(k)
WHERE k < n
"""


def generate(events: int, now: datetime) -> Any:
    """The team's events and targets in an in-memory DuckDB."""
    import duckdb

    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    span_us = int(timedelta(weeks=26).total_seconds() * 1e6)
    stamp = now.replace(tzinfo=None).isoformat(sep=" ")
    con.execute(GENERATE.format(events=events, now=stamp, span_us=span_us))
    con.execute(TARGETS)
    return con


def as_events(con: Any) -> list[dict[str, Any]]:
    """The rows as the event dicts the collector's store writes (the fields it reads)."""
    targets: dict[str, list[dict[str, Any]]] = {}
    for message_id, name, duration, code, critical, depth in con.execute(
        "SELECT message_id, name, duration_ms, exit_code, critical, depth FROM targets"
    ).fetchall():
        targets.setdefault(message_id, []).append(
            {"name": name, "start_ms": 0.0, "duration_ms": duration, "exit_code": code,
             "lines": 1, "critical": critical, "depth": depth}
        )  # fmt: skip
    columns = [d[0] for d in con.execute("SELECT * FROM events LIMIT 0").description]
    out = []
    for row in con.execute("SELECT * FROM events").fetchall():
        item = dict(zip(columns, row, strict=True))
        start = item["start_time"].replace(tzinfo=UTC).isoformat(timespec="milliseconds")
        item.update(
            event="command_run", consent_version=1, command_args=None, start_time=start,
            signal="SIGINT" if item["interrupted"] else None, exit_code_derived=False,
            cpu_user_s=None, cpu_system_s=None, peak_memory_bytes=None,
            make_targets=targets.get(item["message_id"]),
            make_file_targets=None,
            make_targets_omitted=0 if item["message_id"] in targets else None,
            git_work_tree=None, git_commit_time=None, git_on_default_branch=None, git_dirty=None,
            git_behind_upstream=None, git_remote_hash=None, os_release="", python_version="3.11.9",
            cpu_count=None, memory_total_bytes=None, ci_vendor=None, container=False,
        )  # fmt: skip
        del item["received_at"]
        out.append(item)
    return out


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def timed(label: str, read: Any, now: datetime, repeat: int, opener: Any = None) -> None:
    """Build the report `repeat` times; print wall and CPU time (user + system, all of
    DuckDB's threads), which a machine shared with other work hardly changes."""
    opts = report.options(now, weeks=26)
    times, cpus = [], []
    made = None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        reader = opener() if opener else read
        made = report.build(reader, opts)
        times.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    assert made is not None
    print(
        f"{label:<6} wall median {statistics.median(times):6.3f} s (slowest {max(times):.3f} s), "
        f"CPU median {statistics.median(cpus):.3f} s; budget {BUDGET_S:.0f} s. "
        f"{made.total.runs} runs, {len(made.commands)} command-weeks, "
        f"{len(made.targets)} targets, {made.suppressed} cells suppressed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", default="memory,store")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    con = generate(args.events, now)
    events, targets = (
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "targets")
    )
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work on this machine)"
    )
    print(
        f"generated {events} events and {targets} target rows "
        f"in {time.perf_counter() - start:.1f} s"
    )
    sources = args.source.split(",")
    if "memory" in sources:
        timed("memory", report.duckdb_reader(con), now, args.repeat)
    if "store" in sources:
        from send_metrics.operator.store import EmbeddedStore, open_for_report

        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            store = EmbeddedStore(Path(folder))
            every = as_events(con)
            for i in range(0, len(every), 50_000):
                store.write(every[i : i + 50_000])
            store.compact(force=True)
            store.close()
            print(f"stored through EmbeddedStore in {time.perf_counter() - start:.1f} s")
            timed(
                "store", None, now, args.repeat,
                lambda: report.duckdb_reader(open_for_report(Path(folder))),
            )  # fmt: skip


if __name__ == "__main__":
    main()
