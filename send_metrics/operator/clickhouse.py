"""ClickHouse at scale: the table `collect --clickhouse URL` writes (our DDL, `ClickHouseBackend`),
and the report's reader over it or over the OpenTelemetry Collector ClickHouse exporter's
`otel_logs` table (where our `otlp` sink's events land).

The report's numbers are the SQL texts of `report_sql`, transpiled from DuckDB's dialect by
SQLGlot; only the two relations they read, `events` and `targets`, are written here for
ClickHouse (as WITH clauses over the table), so each number keeps one definition.

How the exporter stores our events (its README and `logs_table.sql`): one row per log record,
`LogAttributes` and `ResourceAttributes` as Map(LowCardinality(String), String), each value
made text by pdata's `Value.AsString`: strings as they are, ints in decimal, doubles in the
shortest form that reads back, bools `true`/`false`, arrays and key-value lists as JSON. So
`send_metrics.make_targets` (an array of key-value lists) is a JSON array of objects; one
sent as Python repr text by an older sink is JSON strings, which give no targets.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from send_metrics.errors import ConfigError

# Deferred imports: clickhouse-connect and sqlglot (the clickhouse extra) load only when
# ClickHouse is used.

DEFAULT_TABLE = "send_metrics_events"
OTEL_TABLE = "otel_logs"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Our table: the contract's event columns, the make targets as an array of named tuples, and
# the whole event as JSON (every disclosed field kept for later reports). ReplacingMergeTree
# on (anonymous_id, message_id): a replayed event collapses into one row, and read with FINAL
# is counted once; erasing one developer touches one key range.
TABLE_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    message_id String,
    anonymous_id String,
    app LowCardinality(String),
    app_version LowCardinality(String),
    tool_version LowCardinality(String),
    schema_version UInt16,
    command LowCardinality(String),
    command_type LowCardinality(String),
    start_time DateTime64(3, 'UTC'),
    duration_ms Float64,
    exit_code Nullable(Int32),
    interrupted Bool,
    os LowCardinality(String),
    arch LowCardinality(String),
    ci Bool,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3),
    make_targets Array(Tuple(
        name String, duration_ms Float64, exit_code Nullable(Int32), critical Bool, depth UInt16
    )),
    event String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start_time)
ORDER BY (anonymous_id, message_id)"""

EVENT_COLUMNS = (
    "message_id, anonymous_id, app, app_version, tool_version, schema_version, command, "
    "command_type, start_time, duration_ms, exit_code, interrupted, os, arch, ci, received_at"
)


def our_sources(table: str) -> dict[str, str]:
    """`events` and `targets` over our table, one row per message_id (FINAL)."""
    return {
        "events": f"SELECT {EVENT_COLUMNS} FROM {table} FINAL",
        "targets": (
            "SELECT message_id, anonymous_id, start_time, command, t.name AS name, "
            "t.duration_ms AS duration_ms, t.exit_code AS exit_code, t.critical AS critical, "
            "toInt32(t.depth) AS depth FROM (SELECT message_id, anonymous_id, start_time, "
            f"command, make_targets FROM {table} FINAL) ARRAY JOIN make_targets AS t"
        ),
    }


def otel_sources(table: str) -> dict[str, str]:
    """`events` and `targets` over the exporter's logs table: our records only (scope
    send_metrics, body command_run), one per log.record.uid (a retried export may repeat it)."""
    log, res = "LogAttributes", "ResourceAttributes"
    records = (
        f"SELECT {log}['log.record.uid'] AS message_id, "
        f"{log}['enduser.pseudo.id'] AS anonymous_id, "
        f"{res}['service.name'] AS app, {res}['service.version'] AS app_version, "
        f"{log}['send_metrics.tool_version'] AS tool_version, "
        f"toInt32OrNull({log}['send_metrics.schema_version']) AS schema_version, "
        f"{log}['process.command'] AS command, "
        f"{log}['send_metrics.command_type'] AS command_type, "
        f"parseDateTime64BestEffort({log}['send_metrics.start_time'], 3, 'UTC') AS start_time, "
        f"toFloat64OrNull({log}['send_metrics.duration_ms']) AS duration_ms, "
        f"toInt32OrNull({log}['process.exit.code']) AS exit_code, "
        f"{log}['send_metrics.interrupted'] = 'true' AS interrupted, "
        f"{res}['os.type'] AS os, {res}['host.arch'] AS arch, "
        f"{res}['send_metrics.ci'] = 'true' AS ci, "
        "toDateTime64(Timestamp, 3, 'UTC') AS received_at, "
        f"{log}['send_metrics.make_targets'] AS make_targets_json "
        f"FROM {table} WHERE ScopeName = 'send_metrics' AND Body = 'command_run' "
        f"AND {log}['log.record.uid'] != '' LIMIT 1 BY message_id"
    )
    return {
        "events": f"SELECT {EVENT_COLUMNS} FROM ({records})",
        "targets": (
            "SELECT message_id, anonymous_id, start_time, command, "
            "JSONExtractString(t, 'name') AS name, "
            "JSONExtractFloat(t, 'duration_ms') AS duration_ms, "
            "JSONExtract(t, 'exit_code', 'Nullable(Int32)') AS exit_code, "
            "JSONExtractBool(t, 'critical') AS critical, "
            "toInt32(JSONExtractInt(t, 'depth')) AS depth "
            f"FROM ({records}) ARRAY JOIN JSONExtractArrayRaw(make_targets_json) AS t "
            "WHERE JSONType(t) = 'Object'"
        ),
    }


class Connection(Protocol):
    """What we need of a ClickHouse client: rows of a query, a statement, an insert of JSON
    lines. `connect` gives one over clickhouse-connect; the tests give one over chDB."""

    def rows(self, sql: str) -> Sequence[Sequence[Any]]: ...

    def run(self, sql: str) -> None: ...

    def insert_json(self, table: str, lines: bytes) -> None: ...


class _Client:
    """A Connection through clickhouse-connect (HTTP), every query in UTC."""

    def __init__(self, client: Any):
        self.client = client

    def rows(self, sql: str) -> Sequence[Sequence[Any]]:
        result: Sequence[Sequence[Any]] = self.client.query(sql).result_rows
        return result

    def run(self, sql: str) -> None:
        self.client.command(sql)

    def insert_json(self, table: str, lines: bytes) -> None:
        self.client.raw_insert(table, insert_block=lines, fmt="JSONEachRow")


def client_settings(url: str) -> dict[str, Any]:
    """clickhouse-connect's arguments for `http(s)://user:password@host:port/database`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "clickhouse") or not parts.hostname:
        raise ConfigError(
            f"--clickhouse {parts.scheme}://{parts.hostname or ''}... is not a ClickHouse URL "
            "(http(s)://user:password@host:port/database)"
        )
    settings: dict[str, Any] = {
        "host": parts.hostname,
        "secure": parts.scheme == "https",
        "settings": {"session_timezone": "UTC"},
    }
    try:
        if parts.port:
            settings["port"] = parts.port
    except ValueError:
        raise ConfigError("--clickhouse has a port that is not a number") from None
    if parts.username:
        settings["username"] = unquote(parts.username)
    if parts.password:
        settings["password"] = unquote(parts.password)
    database = parts.path.strip("/")
    if database:
        settings["database"] = database
    return settings


def connect(url: str) -> Connection:
    """A connection to the ClickHouse server at `url` (the `clickhouse` extra)."""
    try:
        import clickhouse_connect
    except ImportError:
        raise ConfigError(
            "--clickhouse needs the clickhouse extra: pip install 'send-metrics[clickhouse]'"
        ) from None
    try:
        return _Client(clickhouse_connect.get_client(**client_settings(url)))
    except Exception as exc:  # its errors have no common base; say it in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot reach ClickHouse at {urlsplit(url).hostname}: {first}") from None


def table_name(table: str) -> str:
    """A table name as given (`name` or `database.name`), refused unless a plain identifier."""
    if not _NAME.match(table):
        raise ConfigError(f"--table {table!r} is not a table name (letters, digits, _, one dot)")
    return table


def _row(event: Mapping[str, Any]) -> dict[str, Any]:
    start = datetime.fromisoformat(str(event["start_time"])).astimezone(UTC)
    targets = event.get("make_targets") or []
    return {
        "message_id": event["message_id"],
        "anonymous_id": event["anonymous_id"],
        "app": event["app"],
        "app_version": event["app_version"],
        "tool_version": event["tool_version"],
        "schema_version": event["schema_version"],
        "command": event["command"],
        "command_type": event["command_type"],
        "start_time": start.strftime("%Y-%m-%d %H:%M:%S.%f")[:23],
        "duration_ms": event["duration_ms"],
        "exit_code": event["exit_code"],
        "interrupted": event["interrupted"],
        "os": event["os"],
        "arch": event["arch"],
        "ci": event["ci"],
        "make_targets": [
            {k: t[k] for k in ("name", "duration_ms", "exit_code", "critical", "depth")}
            for t in targets
        ],
        "event": json.dumps(event, separators=(",", ":")),
    }


class ClickHouseBackend:
    """The store's write side on ClickHouse (the contract's Backend): `collect --clickhouse`."""

    def __init__(self, target: str | Connection, table: str = DEFAULT_TABLE):
        self.table = table_name(table)
        self.connection = connect(target) if isinstance(target, str) else target
        self.connection.run(TABLE_DDL.format(table=self.table))

    def _ids(self, ids: Sequence[str]) -> str:
        bad = [i for i in ids if not _UUID.match(i)]
        if bad:  # the schema's pattern; anything else never reaches SQL text
            raise ValueError(f"not an event or anonymous id: {bad[0]!r}")
        return ", ".join(f"'{i}'" for i in ids)

    def write(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Insert the events not stored yet (by message_id); durable when ClickHouse
        acknowledges the insert. Returns how many were new."""
        if not events:
            return 0
        ids = list(dict.fromkeys(str(e["message_id"]) for e in events))
        known = {
            str(r[0])
            for r in self.connection.rows(
                f"SELECT message_id FROM {self.table} WHERE message_id IN ({self._ids(ids)})"
            )
        }
        fresh: dict[str, Mapping[str, Any]] = {}
        for e in events:
            if e["message_id"] not in known:
                fresh.setdefault(str(e["message_id"]), e)
        if fresh:
            lines = b"".join(json.dumps(_row(e)).encode() + b"\n" for e in fresh.values())
            self.connection.insert_json(self.table, lines)
        return len(fresh)

    def _delete(self, where: str) -> int:
        count = int(
            self.connection.rows(f"SELECT count() FROM {self.table} FINAL WHERE {where}")[0][0]
        )
        if count:
            self.connection.run(f"DELETE FROM {self.table} WHERE {where}")
        return count

    def erase(self, anonymous_id: str) -> int:
        """Delete every event of one developer; how many there were."""
        return self._delete(f"anonymous_id = {self._ids([anonymous_id])}")

    def expire(self, older_than_days: int) -> int:
        """Delete the events that started more than `older_than_days` days ago."""
        return self._delete(f"start_time < now64(3) - INTERVAL {int(older_than_days)} DAY")

    def close(self) -> None:
        """Nothing held open beyond the connection, which its owner closes."""


def sources(connection: Connection, table: str) -> dict[str, str]:
    """The relations over `table`: the exporter's logs table when it has LogAttributes, else
    ours. A table that does not exist is a one-line error."""
    name = table_name(table)
    database, _, bare = name.rpartition(".")
    where = f"database = '{database}'" if database else "database = currentDatabase()"
    columns = {
        str(r[0])
        for r in connection.rows(
            f"SELECT name FROM system.columns WHERE {where} AND table = '{bare}'"
        )
    }
    if not columns:
        raise ConfigError(f"ClickHouse has no table {name}")
    if {"LogAttributes", "ResourceAttributes", "Body"} <= columns:
        return otel_sources(name)
    return our_sources(name)


@functools.lru_cache(maxsize=64)
def transpile(sql: str) -> str:
    """A report SQL text in ClickHouse's dialect. Two things SQLGlot leaves to us: timestamp
    literals become UTC DateTime64 (a plain DateTime cast would read them in the server's
    zone, to the second), and QUANTILE_DISC the same nearest rank written out."""
    import sqlglot
    from sqlglot import exp

    def for_clickhouse(node: Any) -> Any:  # sqlglot's node classes vary across versions
        if isinstance(node, exp.PercentileDisc):  # nearest rank, as DuckDB's QUANTILE_DISC
            value = node.this.sql(dialect="clickhouse")
            rank = f"toUInt64(greatest(1, ceil(count({value}) * {node.expression.sql()})))"
            return sqlglot.parse_one(
                f"arrayElement(arraySort(groupArray({value})), {rank})", read="clickhouse"
            )
        if (
            isinstance(node, exp.Cast)
            and isinstance(node.this, exp.Literal)
            and node.this.is_string
            and node.to.is_type(*timestamps)
        ):
            return exp.Anonymous(
                this="toDateTime64",
                expressions=[node.this, exp.Literal.number(6), exp.Literal.string("UTC")],
            )
        return node

    timestamps = (
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
        exp.DataType.Type.DATETIME,
    )
    tree = sqlglot.parse_one(sql, read="duckdb")
    return str(tree.transform(for_clickhouse).sql(dialect="clickhouse"))


def reader(connection: Connection, table: str) -> Callable[[str], Sequence[Sequence[Any]]]:
    """The report's Reader on ClickHouse: each SQL text transpiled, with `events` and
    `targets` defined over `table` in front of it."""
    relations = sources(connection, table)

    def read(sql: str) -> Sequence[Sequence[Any]]:
        text = transpile(sql)
        used = [name for name in relations if re.search(rf"\b{name}\b", text)]
        ctes = ", ".join(f"{name} AS ({relations[name]})" for name in used)
        return connection.rows(f"WITH {ctes} {text}" if ctes else text)

    return read
