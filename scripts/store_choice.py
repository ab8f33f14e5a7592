"""Why the embedded store is SQLite for ingest plus Parquet for reading: the alternatives,
measured on the same realistic events (docs/operator.md quotes one run).

    python scripts/store_choice.py [--events 200000]

For each way of keeping events it prints the time to answer one typical report query (runs,
developers and p50/p90 per command per week) from a fresh reader process's point of view:
what the reader must load before DuckDB can answer, then the query. And whether a second
process can read while the writer holds the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from send_metrics.operator import store
from tests.operator_events import events

QUERY = """
SELECT date_trunc('week', start_time) AS week, command, count(*) AS runs,
       count(DISTINCT anonymous_id) AS developers,
       quantile_cont(duration_ms, 0.5) AS p50, quantile_cont(duration_ms, 0.9) AS p90
FROM {source} GROUP BY ALL ORDER BY ALL
"""


def timed(label: str, action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    took = time.perf_counter() - started
    print(f"  {label}: {took:.2f} s")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    import duckdb

    folder = Path(tempfile.mkdtemp(prefix="store-choice-"))
    sample = events(args.events, seed=5, people=300, days=84)
    print(f"{len(sample)} events, {len(json.dumps(sample)) / len(sample):.0f} bytes of JSON each")

    # 1. The embedded store as built: SQLite ingest, compacted into Parquet.
    kept = store.EmbeddedStore(folder / "embedded")
    print("SQLite ingest + Parquet (the choice):")
    timed(
        "ingest (100 a transaction, fsynced)",
        lambda: [kept.write(sample[i : i + 100]) for i in range(0, len(sample), 100)],
    )
    timed("compaction into Parquet", lambda: kept.compact(force=True))
    kept.close()
    con = None

    def report_parquet() -> None:
        nonlocal con
        con = store.open_for_report(folder / "embedded")
        con.execute(QUERY.format(source="events")).fetchall()

    timed("a reader opens it and answers", report_parquet)

    # 2. SQLite alone: DuckDB has no SQLite reader here (extensions cannot be downloaded), so a
    #    reader must bring every row through Python first.
    print("SQLite alone (rows through Python into DuckDB):")

    import sqlite3

    plain = sqlite3.connect(folder / "plain.sqlite3")
    plain.execute("CREATE TABLE events (event TEXT)")
    plain.executemany("INSERT INTO events VALUES (?)", [(json.dumps(e),) for e in sample])
    plain.commit()
    plain.close()

    def report_sqlite() -> None:
        import pyarrow as pa

        db = sqlite3.connect(folder / "plain.sqlite3")
        rows = [r[0] for r in db.execute("SELECT event FROM events")]
        db.close()
        reader = duckdb.connect()
        reader.execute("SET TimeZone = 'UTC'")
        reader.register("raw", pa.table({"event": rows}))
        reader.execute(
            "CREATE TABLE events AS SELECT e.anonymous_id, e.command, e.duration_ms,"
            " CAST(CAST(e.start_time AS TIMESTAMPTZ) AS TIMESTAMP) AS start_time FROM"
            ' (SELECT json_transform(event, \'{"anonymous_id":"VARCHAR","command":"VARCHAR",'
            '"duration_ms":"DOUBLE","start_time":"VARCHAR"}\') AS e FROM raw)'
        )
        reader.execute(QUERY.format(source="events")).fetchall()

    timed("a reader loads every row and answers", report_sqlite)

    # 3. NDJSON day files, read by DuckDB's JSON reader.
    print("NDJSON files read by DuckDB:")
    ndjson = folder / "events.ndjson"
    with ndjson.open("w") as out:
        for one in sample:
            out.write(json.dumps(one) + "\n")

    def report_ndjson() -> None:
        reader = duckdb.connect()
        reader.execute("SET TimeZone = 'UTC'")
        source = (
            f"(SELECT anonymous_id, command, duration_ms, CAST(CAST(start_time AS TIMESTAMPTZ)"
            f" AS TIMESTAMP) AS start_time FROM read_json('{ndjson}', format='newline_delimited'))"
        )
        reader.execute(QUERY.format(source=source)).fetchall()

    timed("a reader parses every line and answers", report_ndjson)

    # 4. A DuckDB database file the collector owns: can another process read it meanwhile?
    print("DuckDB database file owned by the writer:")
    owned = folder / "owned.duckdb"
    writer = duckdb.connect(str(owned))
    writer.execute("CREATE TABLE t AS SELECT 1 AS x")
    probe = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(owned)!r}, read_only=True)"],
        capture_output=True,
        text=True,
    )
    said = (probe.stderr.strip().splitlines() or ["opened"])[-1][:150]
    print(
        "  a second process opening it read-only: "
        f"{'refused' if probe.returncode else 'opened'} ({said})"
    )
    writer.close()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
