"""`send_metrics report` end to end: open the source (the embedded store or ClickHouse), build
the report, render it; the CLI only parses options and prints the lines given back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from send_metrics.errors import ConfigError
from send_metrics.operator import report, report_text

# Deferred imports: the store, ClickHouse and the page's writer load only for the report asked
# for.


def _embedded(data: str | None) -> report.Reader:
    try:
        from send_metrics.operator.store import default_data_dir, open_for_report
    except ImportError as exc:
        raise ConfigError(
            f"reading the embedded store needs the collector extra ({exc.name} is missing): "
            "pip install 'send-metrics[collector]'"
        ) from None
    folder = Path(data) if data else default_data_dir()
    if not folder.is_dir():
        raise ConfigError(f"--data {folder}: no such folder (the collector's --data)")
    return report.duckdb_reader(open_for_report(folder))


def run(
    data: str | None,
    clickhouse_url: str | None,
    table: str,
    fmt: str,
    html_file: str | None,
    now: datetime,
    since: datetime | None,
    weeks: int,
    idle_weeks: int,
    **rules: Any,
) -> Iterator[str]:
    """The lines `report` prints (none for a page written to a file)."""
    if clickhouse_url:
        from send_metrics.operator import clickhouse

        clickhouse.table_name(table)  # refused before any connection
        read = clickhouse.reader(clickhouse.connect(clickhouse_url), table)
    else:
        read = _embedded(data)
    made = report.build(read, report.options(now, since, weeks, idle_weeks, **rules))
    if fmt == "json":
        yield report_text.as_json(made)
    elif fmt == "csv":
        yield report_text.as_csv(made).rstrip("\n")
    elif fmt == "html":
        from send_metrics.local.report_html import write
        from send_metrics.operator import report_html

        write(html_file or "-", report_html.page(made))
        if html_file != "-":
            yield f"Wrote {html_file} ({made.suppressed} cells suppressed)."
    else:
        import shutil

        yield from report_text.text(
            made, width=max(40, shutil.get_terminal_size((100, 24)).columns)
        )
