"""The report on ClickHouse (chDB: ClickHouse's own engine in this process) gives the same report
as the embedded store's DuckDB for the same events, whether they reached ClickHouse through our
table (`ClickHouseBackend`, behind `collect --clickhouse`) or through the OpenTelemetry Collector
ClickHouse exporter's `otel_logs` (our otlp sink's request, flattened as the exporter does)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from send_metrics.errors import ConfigError
from send_metrics.operator import clickhouse, report, report_sql, report_text
from tests.team_events import (
    OTEL_LOGS_DDL,
    ChdbConnection,
    as_string,
    event,
    in_duckdb,
    otel_logs_rows,
    team,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def chdb(tmp_path: Path) -> Any:
    connection = ChdbConnection(tmp_path / "clickhouse")
    yield connection
    connection.close()


def _json_lines(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _report(read: report.Reader, k: int) -> dict[str, Any]:
    opts = report.options(NOW, weeks=6, min_developers=k)
    return report_text.as_dict(report.build(read, opts))


@pytest.mark.parametrize("k", [1, 5])
def test_duckdb_our_table_and_otel_logs_give_the_same_report(
    tmp_path: Path, chdb: ChdbConnection, k: int
) -> None:
    events = team(seed=11, developers=25, runs=1500, weeks=6, now=NOW)
    embedded = _report(report.duckdb_reader(in_duckdb(events, tmp_path)), k)

    backend = clickhouse.ClickHouseBackend(chdb)
    assert backend.write(events[:700]) == 700
    assert backend.write(events) == 800  # a replayed batch: only the new ones count
    ours = _report(clickhouse.reader(chdb, clickhouse.DEFAULT_TABLE), k)

    chdb.run(OTEL_LOGS_DDL)
    rows = otel_logs_rows(events)
    chdb.insert_json("otel_logs", _json_lines(rows + rows[:200]))  # a retried export
    otel = _report(clickhouse.reader(chdb, "otel_logs"), k)

    assert embedded["total"]["runs"] == 1500 or embedded["total"]["suppressed"] is False
    assert len(embedded["commands"]) > 40 and len(embedded["targets"]) == 8
    assert ours == embedded
    assert otel == embedded
    if k == 5:
        assert any(c["suppressed"] for c in embedded["commands"])


def test_week_edges_and_odd_names_agree(tmp_path: Path, chdb: ChdbConnection) -> None:
    """Runs at the very first and last millisecond of an ISO week, names with quotes and
    markup, a run with no exit status: both engines put them in the same cells."""
    import random

    rng = random.Random(2)
    monday = report.monday(NOW) - timedelta(weeks=1)
    edges = [
        monday,
        monday - timedelta(milliseconds=1),
        monday + timedelta(days=7, milliseconds=-1),
    ]
    people = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "os": ("linux", "6"), "arch": "arm64",
         "ci": i % 2 == 0, "tool_version": "0.1.0", "app_version": "it's"}
        for i in range(6)
    ]  # fmt: skip
    events = [
        event(rng, people[i % 6], name, start, 10.0 * (i + 1), code, True)
        for i, (name, start, code) in enumerate(
            (n, s, c)
            for n in ("it's", 'say "hi"', "<b>&amp;</b>", "ünïcode")
            for s in edges
            for c in (0, None, 2)
        )
    ]
    embedded = _report(report.duckdb_reader(in_duckdb(events, tmp_path)), 1)
    clickhouse.ClickHouseBackend(chdb).write(events)
    chdb.run(OTEL_LOGS_DDL)
    chdb.insert_json("otel_logs", _json_lines(otel_logs_rows(events)))
    assert _report(clickhouse.reader(chdb, clickhouse.DEFAULT_TABLE), 1) == embedded
    assert _report(clickhouse.reader(chdb, "otel_logs"), 1) == embedded
    weeks = {w["monday"]: w["runs"] for w in embedded["weeks"]}
    previous = (monday - timedelta(weeks=1)).date().isoformat()
    assert weeks == {previous: 12, monday.date().isoformat(): 24}


def test_erase_expire_and_a_store_that_outlives_the_connection(tmp_path: Path) -> None:
    events = team(seed=12, developers=8, runs=300, weeks=8, now=datetime.now(UTC))
    first = ChdbConnection(tmp_path / "ch")
    backend = clickhouse.ClickHouseBackend(first)
    assert backend.write(events) == 300
    assert backend.write(events[:10] + events[:10]) == 0
    backend.close()
    first.close()

    again = ChdbConnection(tmp_path / "ch")  # a new process would see the same rows
    backend = clickhouse.ClickHouseBackend(again)
    assert again.rows(f"SELECT count() FROM {clickhouse.DEFAULT_TABLE} FINAL")[0][0] == 300
    someone = events[0]["anonymous_id"]
    theirs = sum(e["anonymous_id"] == someone for e in events)
    assert backend.erase(someone) == theirs > 0
    assert backend.erase(someone) == 0
    left = again.rows(
        f"SELECT count() FROM {clickhouse.DEFAULT_TABLE} FINAL WHERE anonymous_id = '{someone}'"
    )
    assert left[0][0] == 0
    cutoff = datetime.now(UTC) - timedelta(days=28)
    old = sum(
        e["anonymous_id"] != someone and datetime.fromisoformat(e["start_time"]) < cutoff
        for e in events
    )
    assert backend.expire(28) == old > 0
    assert again.rows(f"SELECT count() FROM {clickhouse.DEFAULT_TABLE} FINAL")[0][0] == (
        300 - theirs - old
    )
    with pytest.raises(ValueError, match="not an event or anonymous id"):
        backend.erase("' OR 1=1 --")
    again.close()


def test_the_exporters_rendering_and_an_older_sink(tmp_path: Path, chdb: ChdbConnection) -> None:
    """Attribute values are made text as pdata's AsString does; events whose make_targets came
    as Python repr text (before issue 21) still count, with no targets read from them."""
    assert as_string({"doubleValue": 1520.0}) == "1520"
    assert as_string({"doubleValue": 0.1}) == "0.1"
    assert as_string({"intValue": "-3"}) == "-3"
    assert as_string({"boolValue": False}) == "false"
    nested = {"arrayValue": {"values": [{"kvlistValue": {"values": [
        {"key": "name", "value": {"stringValue": "a<b"}},
        {"key": "critical", "value": {"boolValue": True}},
    ]}}]}}  # fmt: skip
    assert as_string(nested) == '[{"critical":true,"name":"a\\u003cb"}]'

    events = team(seed=13, developers=6, runs=200, weeks=2, now=NOW)
    rows = otel_logs_rows(events)
    for row in rows[:50]:
        targets = row["LogAttributes"].get("send_metrics.make_targets")
        if targets:
            items = json.loads(targets)
            row["LogAttributes"]["send_metrics.make_targets"] = json.dumps([repr(i) for i in items])
    stranger = dict(rows[0], ScopeName="other", LogAttributes={"log.record.uid": "x"})
    chdb.run(OTEL_LOGS_DDL)
    chdb.insert_json("otel_logs", _json_lines([*rows, stranger]))
    got = _report(clickhouse.reader(chdb, "otel_logs"), 1)
    embedded = _report(report.duckdb_reader(in_duckdb(events, tmp_path)), 1)
    assert got["total"] == embedded["total"]
    assert got["commands"] == embedded["commands"]
    old_targets = sum(len(e["make_targets"] or []) for e in events[:50])
    assert old_targets > 0
    # The report publishes no target counts: compare the rows of the targets query itself.
    texts = report_sql.queries(datetime(2000, 1, 1), datetime(2100, 1, 1), datetime(2100, 1, 1))
    assert sum(r[2] for r in clickhouse.reader(chdb, "otel_logs")(texts.targets)) == (
        sum(r[2] for r in report.duckdb_reader(in_duckdb(events, tmp_path / "b"))(texts.targets))
        - old_targets
    )


def test_one_sql_text_per_number_transpiled(tmp_path: Path, chdb: ChdbConnection) -> None:
    """The ClickHouse text is SQLGlot's translation of the DuckDB text, with UTC timestamps."""
    since = datetime(2026, 11, 2, 0, 0)
    texts = report_sql.queries(since, since + timedelta(weeks=4), since + timedelta(weeks=3))
    for sql in (texts.total, texts.weeks, texts.commands, texts.targets, texts.idle):
        converted = clickhouse.transpile(sql)
        assert "toDateTime64('2026-11-02 00:00:00.000000', 6, 'UTC')" in converted
        assert "TIMESTAMP" not in converted
    with pytest.raises(ConfigError, match="no table nope"):
        clickhouse.reader(chdb, "nope")


def test_clickhouse_urls() -> None:
    settings = clickhouse.client_settings("https://ops:s%3Acret@ch.example:8443/metrics")
    assert settings == {
        "host": "ch.example",
        "secure": True,
        "port": 8443,
        "username": "ops",
        "password": "s:cret",
        "database": "metrics",
        "settings": {"session_timezone": "UTC"},
    }
    assert clickhouse.client_settings("http://localhost")["secure"] is False
    for bad in ("ftp://host/x", "localhost:8123", "http://host:port/"):
        with pytest.raises(ConfigError):
            clickhouse.client_settings(bad)
    for name in ("otel_logs", "db.events"):
        assert clickhouse.table_name(name) == name
    for name in ("a b", "x;drop", "a.b.c", ""):
        with pytest.raises(ConfigError):
            clickhouse.table_name(name)
