#!/usr/bin/env python3
"""Benchmark: how long `send_metrics stats` takes on a full history (10,000 runs, the store's
bound), as a real process, against the budget of 1 s and against `send_metrics --version`
(the floor: the interpreter and click starting).

Each form of the command runs `--repeat` times after one warm-up in a temporary HOME; the
table gives the median and the slowest wall time and the median CPU time (user + system),
which other work on a shared machine hardly changes. Nothing is asserted.

    python scripts/stats_bench.py [--runs 10000] [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BUDGET_MS = 1000.0
SEND_METRICS = str(Path(sys.executable).parent / "send_metrics")


def fill(home: Path, runs: int) -> None:
    """A history of `runs` runs of 100 commands over 60 days, a tenth of them traced make
    runs, through the store's own schema."""
    from send_metrics.event import store
    from send_metrics.local.stats import BREAKDOWN_FIELD

    path = home / ".local/share/send_metrics" / store.DB_NAME
    store.Store(path).close()
    now = datetime.now(UTC)
    rows = []
    for i in range(runs):
        command = f"target-{i % 100:03d}"
        start = (now - timedelta(days=60 * (1 - i / runs))).isoformat(timespec="milliseconds")
        duration = float(100 + (i * 7919) % 60_000)
        event: dict[str, object] = {
            "message_id": f"{i:08x}-0000-4000-8000-000000000000",
            "command": command,
            "start_time": start,
            "duration_ms": duration,
            "exit_code": int(i % 17 == 0),
        }
        if i % 10 == 0:
            event[BREAKDOWN_FIELD] = [
                {"name": f"step-{k}", "duration_ms": duration / 4, "exit_code": 0} for k in range(4)
            ]
        rows.append(
            (event["message_id"], command, start, duration, event["exit_code"], json.dumps(event))
        )
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)", rows)


def timed(args: list[str], env: dict[str, str], repeat: int) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system) in ms of `send_metrics ARGS`, after one
    warm-up run. CPU time hardly moves when other work shares the machine; wall time does."""
    times, cpu = [], []
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [SEND_METRICS, *args], env=env, capture_output=True, text=True, check=False
        )
        elapsed = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"send_metrics {' '.join(args)} failed: {done.stderr.strip()}")
        if i:
            times.append(elapsed)
            used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            cpu.append(used * 1000)
    return times, cpu


def in_process(home: Path, repeat: int) -> dict[str, float]:
    """Our own part: read the history, compute, format; in this process, median of `repeat`."""
    os.environ["XDG_DATA_HOME"] = str(home / ".local/share")
    from send_metrics.local import report_html, stats_text
    from send_metrics.local import stats as numbers
    from send_metrics.settings.config import Settings

    settings = Settings()

    def table() -> object:
        report = numbers.report(numbers.load_runs(settings), numbers.window(None))
        return stats_text.table(report, stats_text.Style(120), 0)

    def page() -> object:
        report = numbers.report(numbers.load_runs(settings), numbers.window(None))
        slowest = report_html.slowest_command(report) or ""
        found = numbers.detail(report, slowest, numbers.command_events(settings, slowest))
        return report_html.page(report, found, "bench")

    forms = {"read + table": table, "read + page": page}
    results = {}
    for name, call in forms.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        results[name] = round(statistics.median(times), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "COLUMNS": "120",
        }
        env.pop("NO_COLOR", None)
        fill(home, options.runs)
        forms = {
            "floor: --version": ["--version"],
            "stats": ["stats"],
            "stats --since 7d": ["stats", "--since", "7d"],
            "stats --json": ["stats", "--json"],
            "stats --csv": ["stats", "--csv"],
            "stats --command target-007": ["stats", "--command", "target-007"],
            "stats --html FILE": ["stats", "--html", str(home / "report.html")],
        }
        results = []
        for name, args in forms.items():
            times, cpu = timed(args, env, options.repeat)
            median = statistics.median(times)
            results.append(
                {
                    "form": name,
                    "median_ms": round(median, 1),
                    "max_ms": round(max(times), 1),
                    "cpu_ms": round(statistics.median(cpu), 1),
                    "ratio_to_budget": round(median / BUDGET_MS, 3),
                }
            )
        inside = in_process(home, options.repeat)
    if options.json:
        doc = {"runs": options.runs, "results": results, "in_process_ms": inside}
        print(json.dumps(doc, indent=2))
        return
    print(f"{options.runs} runs in the history; {options.repeat} timed runs each; budget 1 s")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'form':<30} {'median':>9} {'slowest':>9} {'CPU':>9} {'of budget':>10}")
    for row in results:
        print(
            f"{row['form']:<30} {row['median_ms']:>7.1f}ms {row['max_ms']:>7.1f}ms "
            f"{row['cpu_ms']:>7.1f}ms {row['ratio_to_budget']:>10.2f}"
        )
    print("in process, without the interpreter's start (median wall time):")
    for name, ms in inside.items():
        print(f"  {name:<28} {ms:>7.1f}ms")


if __name__ == "__main__":
    main()
