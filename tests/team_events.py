"""A team's events, made up realistically for the operator's report: many developers of uneven
activity, commands of uneven popularity with skewed (log-normal) durations, failures, CI runs,
several OS, arch and version values, make breakdowns with a critical path; every event valid
against the shipped schema. And the contract's two relations (`events`, `targets`) in an
in-memory DuckDB, filled from them, as the embedded store's `open_for_report` gives them."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

COMMANDS = [
    "dev.up",
    "dev.provision",
    "test",
    "lint",
    "build",
    "migrate",
    "docs",
    "release",
    "dev.reset",
    "bench",
    "e2e",
    "fmt",
]
TARGETS = ["pull", "compile", "link", "assets", "migrate-db", "seed", "check", "package"]
OSES = [("linux", "6.1.0-18-amd64"), ("darwin", "23.4.0"), ("windows", "10.0.22631")]
ARCHES = ["amd64", "arm64"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def event(
    rng: random.Random,
    developer: dict[str, Any],
    command: str,
    start: datetime,
    duration_ms: float,
    exit_code: int | None,
    traced: bool,
    steps: list[str] | None = None,
) -> dict[str, Any]:
    """One schema-valid event of `developer`'s run of `command`; a traced run ran some of
    `steps` (its Makefile's targets; any of TARGETS without them)."""
    targets = None
    if traced:
        pool = steps or TARGETS
        names = rng.sample(pool, rng.randint(1, min(5, len(pool))))
        offset = 0.0
        targets = []
        for i, name in enumerate(names):
            share = duration_ms / len(names)
            targets.append(
                {
                    "name": name,
                    "start_ms": round(offset, 3),
                    "duration_ms": round(share * rng.uniform(0.5, 1.0), 3),
                    "exit_code": 0 if exit_code == 0 or i < len(names) - 1 else exit_code,
                    "lines": rng.randint(1, 6),
                    "critical": i == 0 or rng.random() < 0.5,
                    "depth": 0 if rng.random() < 0.8 else 1,
                }
            )
            offset += share
    return {
        "schema_version": 2,
        "event": "command_run",
        "message_id": _uuid(rng),
        "anonymous_id": developer["id"],
        "app": "devstack",
        "app_version": developer["app_version"],
        "tool_version": developer["tool_version"],
        "consent_version": 1,
        "command": command,
        "command_args": None,
        "command_type": "make" if traced or command != "bench" else "command",
        "start_time": start.isoformat(timespec="milliseconds"),
        "duration_ms": duration_ms,
        "exit_code": exit_code,
        "signal": "SIGINT" if exit_code is None else None,
        "interrupted": exit_code is None,
        "exit_code_derived": False,
        "cpu_user_s": round(duration_ms / 3000, 3),
        "cpu_system_s": round(duration_ms / 20000, 3),
        "peak_memory_bytes": 50_000_000,
        "make_targets": targets,
        "make_file_targets": None,
        "make_targets_omitted": 0 if traced else None,
        "git_work_tree": True,
        "git_commit_time": None,
        "git_on_default_branch": True,
        "git_dirty": False,
        "git_behind_upstream": 0,
        "git_remote_hash": None,
        "os": developer["os"][0],
        "os_release": developer["os"][1],
        "arch": developer["arch"],
        "python_version": "3.11.9",
        "cpu_count": 8,
        "memory_total_bytes": 17_179_869_184,
        "ci": developer["ci"],
        "ci_vendor": "github_actions" if developer["ci"] else None,
        "container": False,
    }


def team(
    seed: int = 1,
    developers: int = 40,
    weeks: int = 6,
    runs: int = 2000,
    now: datetime | None = None,
    commands: list[str] | None = None,
) -> list[dict[str, Any]]:
    """`runs` events of `developers` people over the last `weeks` ISO weeks before `now`:
    activity and command popularity follow a power law, so small cells occur naturally."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    names = commands or COMMANDS
    people = [
        {
            "id": _uuid(rng),
            "os": OSES[0] if rng.random() < 0.6 else rng.choice(OSES[1:]),
            "arch": ARCHES[0] if rng.random() < 0.7 else ARCHES[1],
            "ci": rng.random() < 0.1,
            "tool_version": rng.choice(["0.1.0", "0.1.0", "0.2.0"]),
            "app_version": rng.choice(["2026.10", "2026.11", "2026.11", ""]),
            "weight": 1 / (i + 1) ** 0.8,
        }
        for i in range(developers)
    ]
    popularity = [1 / (i + 1) ** 1.1 for i in range(len(names))]
    typical = {name: 500 * 3 ** (i % 6) for i, name in enumerate(names)}
    # Each command's Makefile runs its own few of the targets (some shared between commands).
    steps = {name: [TARGETS[(i + j * 3) % len(TARGETS)] for j in range(2 + i % 4)]
             for i, name in enumerate(names)}  # fmt: skip
    span = timedelta(weeks=weeks).total_seconds()
    out = []
    for _ in range(runs):
        person = rng.choices(people, [p["weight"] for p in people])[0]
        command = rng.choices(names, popularity)[0]
        start = now - timedelta(seconds=rng.uniform(1, span))
        duration = round(typical[command] * math.exp(rng.gauss(0, 0.6)), 3)
        roll = rng.random()
        exit_code = 0 if roll < 0.85 else (None if roll < 0.88 else rng.choice([1, 2]))
        traced = command != "bench" and rng.random() < 0.5
        out.append(event(rng, person, command, start, duration, exit_code, traced, steps[command]))
    return out


EVENT_COLUMNS = (
    "message_id VARCHAR, anonymous_id VARCHAR, app VARCHAR, app_version VARCHAR, "
    "tool_version VARCHAR, schema_version INTEGER, command VARCHAR, command_type VARCHAR, "
    "start_time TIMESTAMP, duration_ms DOUBLE, exit_code INTEGER, interrupted BOOLEAN, "
    "os VARCHAR, arch VARCHAR, ci BOOLEAN, received_at TIMESTAMP"
)
TARGET_COLUMNS = (
    "message_id VARCHAR, anonymous_id VARCHAR, start_time TIMESTAMP, command VARCHAR, "
    "name VARCHAR, duration_ms DOUBLE, exit_code INTEGER, critical BOOLEAN, depth INTEGER"
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def rows(events: Iterable[dict[str, Any]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("events" | "targets", row) for each event and each of its make targets."""
    for e in events:
        start = _utc(e["start_time"])
        yield "events", (
            e["message_id"], e["anonymous_id"], e["app"], e["app_version"], e["tool_version"],
            e["schema_version"], e["command"], e["command_type"], start, e["duration_ms"],
            e["exit_code"], e["interrupted"], e["os"], e["arch"], e["ci"], start,
        )  # fmt: skip
        for t in e["make_targets"] or []:
            yield "targets", (
                e["message_id"], e["anonymous_id"], start, e["command"], t["name"],
                t["duration_ms"], t["exit_code"], t["critical"], t["depth"],
            )  # fmt: skip


def in_duckdb(events: list[dict[str, Any]], folder: Path) -> Any:
    """An in-memory DuckDB with the contract's `events` and `targets` filled from `events`
    (through JSON lines, the fast way into DuckDB)."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect()
    for table, columns in (("events", EVENT_COLUMNS), ("targets", TARGET_COLUMNS)):
        names = [c.split()[0] for c in columns.split(", ")]
        path = folder / f"{table}.jsonl"
        with open(path, "w") as out:
            for kind, row in rows(events):
                if kind == table:
                    out.write(json.dumps(dict(zip(names, row, strict=True)), default=str) + "\n")
        connection.execute(f"CREATE TABLE {table} ({columns})")
        spec = ", ".join(f"{c.split()[0]}: '{c.split()[1]}'" for c in columns.split(", "))
        connection.execute(
            f"INSERT INTO {table} SELECT * FROM read_json('{path}', columns={{{spec}}}, "
            "format='newline_delimited')"
        )
    return connection


class ChdbConnection:
    """`clickhouse.Connection` over chDB: ClickHouse's own engine, in this process (no server
    can run here). Rows come back typed through Arrow, as clickhouse-connect gives them."""

    def __init__(self, path: Path | None = None):
        from chdb import session

        self.session = session.Session(str(path) if path else None)
        self.session.query("SET session_timezone = 'UTC'")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        table = self.session.query(sql, "ArrowTable")
        return [tuple(r.values()) for r in table.to_pylist()]

    def run(self, sql: str) -> None:
        self.session.query(sql)

    def insert_json(self, table: str, lines: bytes) -> None:
        self.session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n" + lines.decode())

    def close(self) -> None:
        self.session.close()


# The OpenTelemetry Collector ClickHouse exporter's logs table, as its README documents it
# (the columns the exporter writes; its indexes and TTL change nothing the report reads).
OTEL_LOGS_DDL = """CREATE TABLE IF NOT EXISTS otel_logs (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""


def _go_float(value: float) -> str:
    """A double as Go's encoding/json (and so pdata's AsString) writes it: the shortest digits
    that read back, fixed notation unless below 1e-6 or from 1e21 on."""
    from decimal import Decimal

    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa}e{exponent[0]}{int(exponent[1:])}"
    return format(Decimal(repr(value)), "f")


def _go_json(value: Any) -> str:
    """Go's json.Marshal of a raw value: sorted keys, no spaces, <, > and & escaped."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = _go_float(value)
    elif isinstance(value, list):
        text = "[" + ",".join(_go_json(v) for v in value) + "]"
    else:
        text = (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=False)}:{_go_json(v)}"
                for k, v in sorted(value.items())
            )
            + "}"
        )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _raw(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as pdata's AsRaw gives it."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_raw(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {
            kv["key"]: _raw(kv.get("value", {})) for kv in value["kvlistValue"].get("values", [])
        }
    return None


def as_string(value: dict[str, Any]) -> str:
    """pdata's Value.AsString, which the exporter stores in its attribute maps."""
    raw = _raw(value)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float):
        return _go_float(raw)
    if isinstance(raw, list | dict):
        return _go_json(raw)
    return "" if raw is None else str(raw)


def otel_logs_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the exporter writes for our otlp sink's request carrying `events`: the sink's
    own request (`sinks.otlp_request`), flattened as the exporter does."""
    from send_metrics.delivery.sinks import otlp_request

    request = otlp_request(events)
    out = []
    assert len(request["resourceLogs"]) == len(events)  # one resource per event
    for resource_logs in request["resourceLogs"]:
        resource = {
            a["key"]: as_string(a["value"]) for a in resource_logs["resource"]["attributes"]
        }
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                attributes = {}
                for a in record["attributes"]:
                    attributes[a["key"]] = as_string(a["value"])
                nanos = int(record["timeUnixNano"])
                out.append(
                    {
                        "Timestamp": f"{nanos // 10**9}.{nanos % 10**9:09d}",
                        "TraceId": "",
                        "SpanId": "",
                        "TraceFlags": 0,
                        "SeverityText": record["severityText"],
                        "SeverityNumber": record["severityNumber"],
                        "ServiceName": resource.get("service.name", ""),
                        "Body": as_string(record["body"]),
                        "ResourceSchemaUrl": "",
                        "ResourceAttributes": resource,
                        "ScopeSchemaUrl": "",
                        "ScopeName": scope_logs["scope"]["name"],
                        "ScopeVersion": scope_logs["scope"]["version"],
                        "ScopeAttributes": {},
                        "LogAttributes": attributes,
                    }
                )
    return out
