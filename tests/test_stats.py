"""`send_metrics stats` on histories with known durations: totals, medians, trends, periods,
the JSON and CSV contracts, the terminal view (width, colour) and empty histories."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pexpect
import pytest

from send_metrics import stats, stats_text
from tests.helpers import SEND_METRICS, add_runs, assert_no_traceback, opt_in, sm

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
NOW = datetime.now(UTC)


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat(timespec="milliseconds")


# Recent runs lie 1-4 days back (inside --since 7d and the default trend window), previous
# ones 8-13 days back (the 7 days before). Durations in ms; exit code 0 unless given.
KNOWN = [
    ("build", ago(3.5), 100.0, 0),
    ("build", ago(2.5), 200.0, 0),
    ("build", ago(1.5), 300.0, 0),
    ("build", ago(1.2), 400.0, 0),
    ("build", ago(12.5), 1000.0, 0),
    ("build", ago(10.5), 1000.0, 0),
    ("build", ago(9.5), 1000.0, 2),
    ("test", ago(3.4), 2000.0, 0),
    ("test", ago(2.4), 2400.0, 1),
    ("test", ago(1.4), 2200.0, 0),
    ("test", ago(11.0), 1000.0, 0),
    ("test", ago(9.0), 1000.0, 0),
    ("lint", ago(2.0), 500.0, 0),
    ("lint", ago(1.0), 510.0, 0),
    ("lint", ago(8.5), 500.0, 0),
    ("deploy", ago(0.5), 5000.0, 1),
    ("old", ago(40.0), 7000.0, 0),
]


def as_json(*args: str) -> dict:
    result = sm("stats", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_command(doc: dict) -> dict[str, dict]:
    return {c["command"]: c for c in doc["commands"]}


def test_totals_medians_failures_and_order_over_the_last_7_days(home: Path) -> None:
    add_runs(home, KNOWN)
    doc = as_json("--since", "7d")
    assert doc["total_runs"] == 10
    # Busiest first: by time spent in the period.
    assert [c["command"] for c in doc["commands"]] == ["test", "deploy", "lint", "build"]
    found = by_command(doc)
    assert found["build"]["runs"] == 4
    assert found["build"]["total_ms"] == 1000.0
    assert found["build"]["median_ms"] == 250.0
    assert found["build"]["p95_ms"] == 400.0
    assert found["build"]["recent_ms"] == [100.0, 200.0, 300.0, 400.0]  # oldest first
    assert (found["test"]["runs"], found["test"]["failures"]) == (3, 1)
    assert found["test"]["total_ms"] == 6600.0
    assert found["test"]["median_ms"] == 2200.0
    assert found["test"]["success_rate"] == round(2 / 3, 4)
    assert found["deploy"]["success_rate"] == 0.0
    assert found["lint"]["total_ms"] == 1010.0
    assert [s["duration_ms"] for s in doc["slowest"]] == [5000.0, 2400.0, 2200.0, 2000.0, 510.0]
    assert doc["slowest"][0] == {
        "command": "deploy",
        "start_time": KNOWN[15][1],
        "duration_ms": 5000.0,
        "failed": True,
    }


def test_median_and_p95_of_runs_recorded_by_the_store(home: Path) -> None:
    from send_metrics import config, files, store

    event = json.loads(sm("preview", "--", "true").stdout)
    db = store.Store(store.db_path(files.data_dir("send_metrics")))
    for i in range(1, 21):  # durations 10, 20, ... 200 ms; every fifth run fails
        db.record(
            {
                **event,
                "message_id": f"{i:08d}-0000-4000-8000-000000000000",
                "duration_ms": i * 10.0,
                "exit_code": int(i % 5 == 0),
                "start_time": f"2026-11-24T10:00:{i:02d}.000+00:00",
            },
            queue=False,
        )
    db.close()
    runs = stats.load_runs(config.Settings())
    [row] = stats.report(runs, stats.period(None)).commands
    assert (row.command, row.runs, row.failures) == ("true", 20, 4)
    assert (row.median_ms, row.p95_ms, row.total_ms) == (105.0, 190.0, 2100.0)
    assert row.last_run == "2026-11-24T10:00:20.000+00:00"
    shown = sm("stats", env={**os.environ, "COLUMNS": "200"}).stdout.splitlines()
    assert shown[3].split()[:7] == ["true", "20", "4", "80%", "105ms", "190ms", "2.10s"]
    assert shown[3].split()[-2:] == ["2026-11-24", "10:00"]


def test_the_whole_history_without_since(home: Path) -> None:
    add_runs(home, KNOWN)
    doc = as_json()
    assert doc["since"] is None
    assert doc["total_runs"] == len(KNOWN)
    found = by_command(doc)
    assert found["build"]["total_ms"] == 4000.0
    assert found["build"]["failures"] == 1
    assert found["build"]["median_ms"] == 400.0
    assert found["old"]["runs"] == 1
    assert found["old"]["trend"] is None  # no run in either trend window


def test_trend_direction_compares_the_period_with_the_one_before(home: Path) -> None:
    add_runs(home, KNOWN)
    for args in ((), ("--since", "7d")):
        found = by_command(as_json(*args))
        assert found["build"]["trend"] == "faster", args
        assert found["build"]["recent_median_ms"] == 250.0
        assert found["build"]["previous_median_ms"] == 1000.0
        assert found["build"]["change"] == -0.75
        assert found["test"]["trend"] == "slower"
        assert found["test"]["change"] == 1.2
        assert found["lint"]["trend"] == "steady"  # 505 against 500: within 10 %
        assert found["deploy"]["trend"] is None  # nothing the period before
        assert found["deploy"]["previous_median_ms"] is None
    # A 30-day period: its previous period (30-60 days back) holds only `old`.
    found = by_command(as_json("--since", "30d"))
    assert found["build"]["trend"] is None
    assert found["build"]["total_ms"] == 4000.0


def test_trend_threshold_is_ten_percent() -> None:
    assert stats.trend(111.0, 100.0)[0] == "slower"
    assert stats.trend(110.0, 100.0)[0] == "steady"
    assert stats.trend(90.0, 100.0)[0] == "steady"
    assert stats.trend(89.0, 100.0)[0] == "faster"
    assert stats.trend(5.0, 0.0) == ("slower", None)
    assert stats.trend(None, 100.0) == (None, None)


def test_the_table_shows_the_numbers_and_the_trend(home: Path) -> None:
    add_runs(home, KNOWN)
    result = sm("stats", "--since", "7d", env={**os.environ, "COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Runs since ")
    assert "10 runs of 4 commands, 2 failed, 13.6s in all" in lines[0]
    header = lines[2].split()
    assert header[:8] == ["command", "runs", "failures", "ok", "median", "p95", "total", "trend"]
    rows = {line.split()[0]: line.split() for line in lines[3:7]}
    assert rows["build"][1:8] == ["4", "0", "100%", "250ms", "400ms", "1.00s", "↓75%"]
    assert rows["test"][1:8] == ["3", "1", "67%", "2.20s", "2.40s", "6.60s", "↑120%"]
    assert rows["lint"][7] == "→1%"
    assert rows["deploy"][7] == "-"
    assert rows["build"][8] == "▁▃▆█"  # the sparkline of 100, 200, 300, 400 ms
    assert "Slowest runs:" in lines
    slowest = lines[lines.index("Slowest runs:") + 1].split()
    assert slowest[0] == "5.00s" and slowest[-2:] == ["failed", "deploy"]


def test_since_a_date_counts_from_its_midnight_utc_inclusive(home: Path) -> None:
    add_runs(
        home,
        [
            ("a", "2026-11-19T23:59:59.999+00:00", 1.0, 0),
            ("a", "2026-11-20T00:00:00.000+00:00", 2.0, 0),
            ("a", "2026-11-20T12:00:00.000+00:00", 4.0, 0),
        ],
    )
    assert as_json("--since", "2026-11-20")["commands"][0]["total_ms"] == 6.0
    assert as_json("--since", "2026-11-20T00:00:00Z")["commands"][0]["total_ms"] == 6.0
    assert as_json("--since", "2026-11-20T00:00:00.001Z")["commands"][0]["total_ms"] == 4.0
    # An offset is honoured; a date-time without one is UTC.
    assert as_json("--since", "2026-11-20T01:00+01:00")["commands"][0]["total_ms"] == 6.0
    assert as_json("--since", "2026-11-19T23:59:59.999")["commands"][0]["total_ms"] == 7.0
    doc = as_json("--since", "2026-11-20")
    assert doc["since"] == "2026-11-20T00:00:00.000+00:00"


def test_since_days_is_measured_back_from_now(home: Path) -> None:
    add_runs(home, [("a", ago(6.99), 1.0, 0), ("a", ago(7.01), 2.0, 0)])
    assert as_json("--since", "7d")["commands"][0]["total_ms"] == 1.0
    assert as_json("--since", "8d")["commands"][0]["total_ms"] == 3.0
    assert as_json("--since", "169h")["commands"][0]["total_ms"] == 3.0


def test_parse_since_is_exact() -> None:
    now = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    assert stats.parse_since("7d", now) == now - timedelta(days=7)
    assert stats.parse_since("30D", now) == now - timedelta(days=30)
    assert stats.parse_since("12h", now) == now - timedelta(hours=12)
    assert stats.parse_since("2w", now) == now - timedelta(days=14)
    assert stats.parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert stats.parse_since("2026-11-01T09:00", now) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert stats.parse_since("2026-11-01T09:00-02:00", now) == datetime(2026, 11, 1, 11, tzinfo=UTC)
    for bad in ("", "7", "d", "7y", "-7d", "2026-13-01", "yesterday", "7.5d"):
        with pytest.raises(ValueError):
            stats.parse_since(bad, now)


@pytest.mark.parametrize("value", ["yesterday", "7y", "2026-02-30", "", "99999999999d", "9999999d"])
def test_a_bad_since_is_a_usage_error_without_traceback(value: str) -> None:
    result = sm("stats", "--since", value)
    assert result.returncode == 2
    assert "--since" in result.stderr
    assert "is not a period" in result.stderr
    assert_no_traceback(result.stderr)


def test_a_period_from_the_first_year_counts_everything(home: Path) -> None:
    add_runs(home, KNOWN)
    doc = as_json("--since", "0001-01-01")
    assert doc["total_runs"] == len(KNOWN)
    assert doc["previous_since"] == "0001-01-01T00:00:00.000+00:00"


def test_json_keys_are_the_documented_ones(home: Path) -> None:
    add_runs(home, KNOWN)
    doc = as_json("--since", "7d")
    top = {"format", "since", "until", "trend_since", "previous_since", "total_runs"}
    assert set(doc) == top | {"commands", "slowest"}
    assert doc["format"] == stats_text.STATS_FORMAT == 1
    for key in ("since", "until", "trend_since", "previous_since"):
        assert datetime.fromisoformat(doc[key]).utcoffset() == timedelta(0)
    command_keys = set(stats_text.CSV_COLUMNS) | {"recent_ms"}
    types = {
        "command": str,
        "runs": int,
        "failures": int,
        "success_rate": float,
        "total_ms": float,
        "median_ms": float,
        "p95_ms": float,
        "last_run": str,
    }
    for command in doc["commands"]:
        assert set(command) == command_keys
        for key, kind in types.items():
            assert isinstance(command[key], kind), key
        assert command["trend"] in ("slower", "faster", "steady", None)
    for run in doc["slowest"]:
        assert set(run) == {"command", "start_time", "duration_ms", "failed"}
    detail = as_json("--command", "build")
    assert set(detail) == top - {"total_runs"} | {
        "command",
        "stats",
        "runs",
        "days",
        "traced_runs",
        "breakdown",
    }
    assert set(detail["stats"]) == command_keys
    assert set(detail["days"][0]) == {"day", "runs", "failures", "median_ms", "total_ms"}
    section = README.split("## Your own numbers", 1)[1].split("\n## ", 1)[0]
    keys = set(doc) | command_keys | set(detail) | set(detail["days"][0])
    keys |= {"name", "critical"}  # breakdown entries (test_command_detail_... fills them)
    for key in sorted(keys):
        assert f"`{key}`" in section, key


def test_csv_header_is_stable_and_rows_match_the_json(home: Path) -> None:
    add_runs(home, KNOWN)
    result = sm("stats", "--csv", "--since", "7d")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "command,runs,failures,success_rate,total_ms,median_ms,p95_ms,last_run,"
        "recent_median_ms,previous_median_ms,trend,change"
    )
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    found = by_command(as_json("--since", "7d"))
    assert [r["command"] for r in rows] == ["test", "deploy", "lint", "build"]
    for row in rows:
        doc = found[row["command"]]
        assert float(row["total_ms"]) == doc["total_ms"]
        assert row["trend"] == (doc["trend"] or "")
        assert row["previous_median_ms"] == (
            "" if doc["previous_median_ms"] is None else str(doc["previous_median_ms"])
        )
    section = README.split("## Your own numbers", 1)[1].split("\n## ", 1)[0]
    assert lines[0] in section
    runs = sm("stats", "--csv", "--command", "build").stdout.splitlines()
    assert runs[0] == "command,start_time,duration_ms,failed"
    assert runs[0] in section
    assert len(runs) == 1 + 7
    assert runs[-1].split(",")[2:] == ["400.0", "0"]


def test_empty_history_in_every_form() -> None:
    table = sm("stats")
    step = "Nothing is recorded: no yes recorded (`send_metrics opt-in`).\n"
    assert (table.returncode, table.stdout) == (0, stats_text.EMPTY + "\n" + step)
    doc = as_json()
    assert (doc["total_runs"], doc["commands"], doc["slowest"]) == (0, [], [])
    assert sm("stats", "--csv").stdout == ",".join(stats_text.CSV_COLUMNS) + "\n"
    detail = sm("stats", "--command", "build")
    assert (detail.returncode, detail.stdout) == (5, "")
    assert detail.stderr == "send_metrics: no runs recorded of 'build'. " + step
    assert json.loads(sm("stats", "--json", "--command", "x").stdout)["stats"] is None
    page = Path("empty.html")
    assert sm("stats", "--html", str(page)).returncode == 0
    assert '<p id="empty">' in page.read_text()


def test_a_store_that_is_not_a_database_is_named_and_set_aside(home: Path) -> None:
    from tests.helpers import data_db

    path = data_db(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    result = sm("stats")
    assert result.returncode == 0
    assert result.stdout.startswith(stats_text.EMPTY + "\n")
    assert result.stderr.startswith(f"send_metrics: {path} was not a usable database")
    assert len(result.stderr.splitlines()) == 1
    assert path.with_name(path.name + ".corrupt").exists()


def test_a_period_without_runs_says_how_many_there_are(home: Path) -> None:
    add_runs(home, KNOWN)
    result = sm("stats", "--since", "1h")
    assert result.returncode == 0
    assert result.stdout.startswith("No runs since ")
    assert f"{len(KNOWN)} recorded in all (try a longer --since)" in result.stdout


def test_command_detail_with_days_runs_and_make_breakdown(home: Path) -> None:
    def traced(total: float, compile_ms: float, *junk: object) -> dict:
        targets: list[object] = [
            {"name": "compile", "duration_ms": compile_ms, "exit_code": 0, "critical": True},
            {"name": "link", "duration_ms": total - compile_ms, "exit_code": 0},
            *junk,
        ]
        return {stats.BREAKDOWN_FIELD: targets}

    add_runs(
        home,
        [
            ("build", "2026-11-20T10:00:00.000+00:00", 1000.0, 0, traced(1000.0, 700.0)),
            ("build", "2026-11-20T11:00:00.000+00:00", 3000.0, 2, traced(3000.0, 2000.0)),
            (
                "build",
                "2026-11-21T10:00:00.000+00:00",
                2000.0,
                0,
                traced(2000.0, 1500.0, "junk", {"name": 3}, {"name": "x", "duration_ms": True}),
            ),
            ("build", "2026-11-22T10:00:00.000+00:00", 500.0, 0, {stats.BREAKDOWN_FIELD: "no"}),
            ("build", "2026-11-22T11:00:00.000+00:00", 600.0, 0),  # not traced
            ("other", "2026-11-22T11:00:00.000+00:00", 9.0, 0, traced(9.0, 1.0)),
        ],
    )
    doc = as_json("--command", "build")
    assert doc["stats"]["runs"] == 5
    assert [d["day"] for d in doc["days"]] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert doc["days"][0] == {
        "day": "2026-11-20",
        "runs": 2,
        "failures": 1,
        "median_ms": 2000.0,
        "total_ms": 4000.0,
    }
    assert doc["traced_runs"] == 3
    assert doc["breakdown"] == [
        {
            "name": "compile",
            "runs": 3,
            "median_ms": 1500.0,
            "total_ms": 4200.0,
            "failures": 0,
            "critical": 3,
        },
        {
            "name": "link",
            "runs": 3,
            "median_ms": 500.0,
            "total_ms": 1800.0,
            "failures": 0,
            "critical": 0,
        },
    ]
    text = sm("stats", "--command", "build", env={**os.environ, "COLUMNS": "100"}).stdout
    assert "build (all recorded runs): 5 runs, 1 failed, 80% succeeded" in text
    assert "Inside it (3 traced make runs):" in text
    compile_row = next(line for line in text.splitlines() if line.startswith("compile"))
    assert compile_row.split() == ["compile", "3", "0", "1.50s", "4.20s", "3"]
    day_row = next(line for line in text.splitlines() if line.startswith("2026-11-20 "))
    assert day_row.split() == ["2026-11-20", "2", "1", "2.00s", "4.00s"]
    # Since the 21st: the breakdown counts only the traced runs of the period.
    since = as_json("--command", "build", "--since", "2026-11-21")
    assert since["traced_runs"] == 1
    assert [t["total_ms"] for t in since["breakdown"]] == [1500.0, 500.0]


def test_file_targets_are_one_entry_never_named(home: Path) -> None:
    files = {"count": 3, "duration_ms": 400.0, "critical": 1}
    add_runs(
        home,
        [
            ("app", "2026-11-20T10:00:00.000+00:00", 900.0, 0, {stats.FILE_TARGETS_FIELD: files}),
            (
                "app",
                "2026-11-21T10:00:00.000+00:00",
                900.0,
                0,
                {
                    stats.FILE_TARGETS_FIELD: {**files, "critical": 0},
                    stats.BREAKDOWN_FIELD: [{"name": "all", "duration_ms": 500.0}],
                },
            ),
            ("app", "2026-11-22T10:00:00.000+00:00", 900.0, 0, {stats.FILE_TARGETS_FIELD: {}}),
        ],
    )
    doc = as_json("--command", "app")
    assert doc["traced_runs"] == 3
    assert [(t["name"], t["runs"], t["total_ms"], t["critical"]) for t in doc["breakdown"]] == [
        ("(file targets)", 2, 800.0, 1),
        ("all", 1, 500.0, 0),
    ]


def test_an_unknown_command_suggests_a_close_one(home: Path) -> None:
    add_runs(home, KNOWN)
    result = sm("stats", "--command", "tset")
    assert (result.returncode, result.stdout) == (5, "")
    assert result.stderr == "send_metrics: no runs recorded of 'tset'; did you mean test?\n"
    doc = sm("stats", "--command", "tset", "--json")  # the document, and the same exit
    assert doc.returncode == 5 and json.loads(doc.stdout)["stats"] is None
    far = sm("stats", "--command", "zzzzzz")
    assert far.returncode == 5 and "runs of other commands are recorded" in far.stderr


def test_an_empty_history_says_the_next_step(home: Path) -> None:
    """Nothing recorded: the off switch actually set, the missing yes, or (under a yes) how
    runs get recorded; `trace` the same for make runs."""
    off = sm("stats", env={**os.environ, "SEND_METRICS_DISABLED": "1"})
    assert "SEND_METRICS_DISABLED is set here" in off.stdout and "DO_NOT_TRACK" not in off.stdout
    assert "`send_metrics opt-in`" in sm("trace").stdout
    opt_in()
    flat = " ".join(sm("stats").stdout.split())
    assert "Your yes is recorded; runs appear once you run `send_metrics run -- CMD`" in flat
    traced = sm("trace")
    assert traced.returncode == 0 and "-include send_metrics.mk" in traced.stdout
    missing = sm("trace", "nosuch")
    assert missing.returncode == 5 and missing.stdout == ""
    assert missing.stderr.startswith("send_metrics: no recorded make run of 'nosuch'.")


@pytest.mark.parametrize("columns", [40, 60, 80, 132])
def test_every_line_fits_the_terminal_width(home: Path, columns: int) -> None:
    add_runs(home, [*KNOWN, ("a-very-long-target-name." * 4, ago(1), 12.0, 0)])
    env = {**os.environ, "COLUMNS": str(columns)}
    for args in ((), ("--command", "build")):
        result = sm("stats", *args, env=env)
        assert result.returncode == 0
        for line in result.stdout.splitlines():
            assert len(line) <= columns, (columns, line)
    wide = sm("stats", env={**os.environ, "COLUMNS": "200"}).stdout
    assert "last run (UTC)" in wide and "recent" in wide
    narrow = sm("stats", env={**os.environ, "COLUMNS": "60"}).stdout
    assert "last run (UTC)" not in narrow


def test_a_terminal_that_cannot_show_unicode_gets_ascii(home: Path) -> None:
    add_runs(home, KNOWN)
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "160"}
    result = sm("stats", "--since", "7d", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii()
    build = next(line for line in result.stdout.splitlines() if line.startswith("build"))
    assert build.split()[7:9] == ["-75%", "_,+#"]


def _on_a_terminal(env: dict[str, str]) -> str:
    child = pexpect.spawn(
        SEND_METRICS, ["stats"], env=env, encoding="utf-8", dimensions=(40, 120), timeout=30
    )
    text = child.read()
    child.close()
    assert child.exitstatus == 0, text
    return text


def test_colour_only_on_a_terminal_and_never_with_no_color(home: Path) -> None:
    add_runs(home, KNOWN)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env["TERM"] = "xterm-256color"
    coloured = _on_a_terminal(env)
    assert "\x1b[31m" in coloured  # failures in red
    assert re.search(r"\x1b\[1m *command", coloured)
    assert "\x1b[" not in _on_a_terminal({**env, "NO_COLOR": "1"})
    assert "\x1b[" not in _on_a_terminal({**env, "TERM": "dumb"})
    assert "\x1b[" not in sm("stats", env=env).stdout  # a pipe
    # The terminal's own width is used when COLUMNS is not set.
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", x)) for x in coloured.splitlines()) > 80


@pytest.mark.parametrize(
    "args", [["--json", "--csv"], ["--csv", "--html", "x.html"], ["--json", "--html", "-"]]
)
def test_one_output_format_at_a_time(args: list[str]) -> None:
    result = sm("stats", *args)
    assert result.returncode == 2
    assert "choose one of --json, --csv and --html" in result.stderr
    assert_no_traceback(result.stderr)


def test_html_to_a_path_that_cannot_be_written_is_one_line(home: Path, tmp_path: Path) -> None:
    add_runs(home, KNOWN)
    result = sm("stats", "--html", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert result.returncode == 3
    assert result.stderr.startswith("send_metrics: cannot write ")
    assert len(result.stderr.splitlines()) == 1
    stdout = sm("stats", "--html", "-")
    assert stdout.stdout.startswith("<!DOCTYPE html>")


def test_ten_thousand_runs(home: Path) -> None:
    """The history's bound: 10,000 runs of 100 commands give exact counts and totals (the
    time it takes is measured by scripts/stats_bench.py, not asserted here)."""
    runs = [
        (f"target-{i % 100:03d}", ago(40 * (1 - i / 10_000)), float(i % 997), int(i % 13 == 0))
        for i in range(10_000)
    ]
    add_runs(home, runs)
    doc = as_json()
    assert doc["total_runs"] == 10_000
    assert len(doc["commands"]) == 100
    assert sum(c["runs"] for c in doc["commands"]) == 10_000
    assert sum(c["failures"] for c in doc["commands"]) == math.ceil(10_000 / 13)
    found = by_command(doc)
    expected = sum(float(i % 997) for i in range(7, 10_000, 100))
    assert found["target-007"]["total_ms"] == pytest.approx(expected)
    table = sm("stats").stdout.splitlines()
    assert sum(1 for line in table if line.startswith("target-")) == 100
    assert sm("stats", "--html", "big.html").returncode == 0
    # The 8 busiest drawn, and 8 more that failed (here every command has failures).
    assert Path("big.html").read_text().count('class="point"') == 16 * 100


def test_html_for_one_command_draws_only_it(home: Path) -> None:
    add_runs(home, KNOWN)
    page = sm("stats", "--html", "-", "--command", "build", "--since", "7d")
    assert page.returncode == 0
    points = re.findall(r'<circle class="point"[^>]*data-command="([^"]*)"', page.stdout)
    assert points == ["build"] * 4
    assert "Durations of the slowest command: build" in page.stdout  # no traced run here


def test_a_traced_make_target_in_detail_and_in_the_report(home: Path, tmp_path: Path) -> None:
    """Real make through `wrap`, traced by the make tracing: `stats --command` and the page's
    breakdown name the targets inside it, with the critical path (under -j2, `docs` runs
    beside the longer `deps`, so only deps -> build sets the duration)."""
    import subprocess

    from tests.helpers import opt_in

    opt_in()
    work = tmp_path / "proj"
    work.mkdir()
    (work / "Makefile").write_text(
        "dev.%: ; +@send_metrics wrap --make='$(MAKE)' -f Makefile $@\n"
        "impl-dev.build: impl-dev.deps impl-dev.docs\n\t@sleep 0.3\n"
        "impl-dev.deps:\n\t@sleep 0.2\n"
        "impl-dev.docs:\n\t@true\n"
    )
    for _ in range(2):
        done = subprocess.run(
            ["make", "-j2", "dev.build"], cwd=work, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    doc = as_json("--command", "dev.build")
    assert doc["stats"]["runs"] == 2
    assert doc["traced_runs"] == 2
    found = {t["name"]: t for t in doc["breakdown"]}
    assert set(found) == {"impl-dev.build", "impl-dev.deps", "impl-dev.docs"}
    assert found["impl-dev.deps"]["critical"] == 2
    assert found["impl-dev.build"]["critical"] == 2
    assert found["impl-dev.docs"]["critical"] == 0
    assert found["impl-dev.deps"]["median_ms"] >= 200
    assert found["impl-dev.build"]["median_ms"] >= 300
    text = sm("stats", "--command", "dev.build", env={**os.environ, "COLUMNS": "100"}).stdout
    assert "Inside it (2 traced make runs):" in text
    page = sm("stats", "--html", "-").stdout  # the breakdown of one traced run
    assert "Breakdown of a make run: dev.build" in page
    assert 'data-target="impl-dev.deps"' in page and 'data-critical="1"' in page
    assert 'data-target="impl-dev.docs"' in page and 'data-critical="0"' in page
