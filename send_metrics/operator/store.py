"""The embedded default store, in one folder (`collect --data DIR`), with no server.

- Ingest: SQLite in WAL mode with synchronous=FULL. An acknowledged request's events are in the
  fsynced write-ahead log before the collector answers; `seen` holds every message_id (16 bytes)
  for exact de-duplication, `pending` the events not yet compacted.
- Compaction: pending events move, in batches, into day-partitioned Parquet files (one events
  and one targets file per part), written, fsynced and renamed before one SQLite transaction
  lists the part in `parts` and deletes the rows it holds: an event is in exactly one place
  whatever moment a crash hits. Small parts of a day are merged. Replaced files wait in `trash`
  for a grace period so a report that is reading them never loses them.
- Reading (`open_for_report`, any number of processes, while the collector writes): one SQLite
  read transaction gives the list of parts and the pending rows at one instant; DuckDB reads the
  Parquet files and the pending rows as the relations `events` and `targets`.

docs/operator.md says why this design and what the alternatives measured."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from send_metrics.errors import MetricsError
from send_metrics.operator.ingest import EARLIEST, parse_time

# Deferred imports: duckdb and pyarrow (the collector extra), dates and fcntl load only where
# they are used; our data folder only for the default location.

if TYPE_CHECKING:
    import duckdb
    import pyarrow


class Backend(Protocol):
    """Where the collector puts events (the embedded store, or ClickHouse)."""

    def write(self, events: Sequence[Mapping[str, object]]) -> int:
        """Store validated events, durable on return; how many were new (not duplicates)."""
        ...

    def erase(self, anonymous_id: str) -> int:
        """Delete that id's events; how many."""
        ...

    def expire(self, older_than_days: int) -> int:
        """Delete events of UTC days that ended more than `older_than_days` ago; how many."""
        ...

    def close(self) -> None: ...


class StoreUnavailable(MetricsError):
    """The store cannot take events now (disk full, locked, unwritable): answer 503."""


DB_NAME = "ingest.sqlite3"
LOCK_NAME = "collect.lock"
MAINT_LOCK_NAME = "maintenance.lock"
COMPACT_ROWS = 20_000  # pending rows that start a compaction
COMPACT_AGE_S = 300.0  # or the age of the oldest pending row
COMPACT_BATCH = 20_000  # at most this many rows per part (bounds the collector's memory)
MERGE_AT = 8  # a day with this many parts is rewritten as one
GRACE_S = 300.0  # replaced files stay this long for reports reading them
DAY_US = 86_400_000_000
_MICROSECOND = timedelta(microseconds=1)

# Every event field as stored: (column, kind). Kinds: text, int (32 bits), long (64), double,
# bool, time (UTC microseconds in SQLite, TIMESTAMP in DuckDB), list (JSON text in SQLite).
FIELDS: tuple[tuple[str, str], ...] = (
    ("message_id", "text"),
    ("anonymous_id", "text"),
    ("schema_version", "int"),
    ("event", "text"),
    ("app", "text"),
    ("app_version", "text"),
    ("tool_version", "text"),
    ("consent_version", "int"),
    ("command", "text"),
    ("command_args", "list"),
    ("command_type", "text"),
    ("start_time", "time"),
    ("duration_ms", "double"),
    ("exit_code", "int"),
    ("signal", "text"),
    ("interrupted", "bool"),
    ("exit_code_derived", "bool"),
    ("cpu_user_s", "double"),
    ("cpu_system_s", "double"),
    ("peak_memory_bytes", "long"),
    ("make_targets_omitted", "int"),
    ("make_file_count", "int"),
    ("make_file_duration_ms", "double"),
    ("make_file_critical", "int"),
    ("git_work_tree", "bool"),
    ("git_commit_time", "time"),
    ("git_on_default_branch", "bool"),
    ("git_dirty", "bool"),
    ("git_behind_upstream", "int"),
    ("git_remote_hash", "text"),
    ("os", "text"),
    ("os_release", "text"),
    ("arch", "text"),
    ("python_version", "text"),
    ("cpu_count", "int"),
    ("memory_total_bytes", "long"),
    ("ci", "bool"),
    ("ci_vendor", "text"),
    ("container", "bool"),
    ("received_at", "time"),
)
# What is kept of make_file_targets, as (column, key).
_FILE_TARGETS = (
    ("make_file_count", "count"),
    ("make_file_duration_ms", "duration_ms"),
    ("make_file_critical", "critical"),
)
_DUCK_TYPE = {
    "text": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "time": "TIMESTAMP",
    "list": "VARCHAR[]",
}
# The relations the report reads (OPERATOR_CONTRACT.md): exactly these columns, in this order.
EVENT_COLUMNS = (
    "message_id",
    "anonymous_id",
    "app",
    "app_version",
    "tool_version",
    "schema_version",
    "command",
    "command_type",
    "start_time",
    "duration_ms",
    "exit_code",
    "interrupted",
    "os",
    "arch",
    "ci",
    "received_at",
)
TARGET_COLUMNS = (
    "message_id",
    "anonymous_id",
    "start_time",
    "command",
    "name",
    "duration_ms",
    "exit_code",
    "critical",
    "depth",
)
# pending's columns (the event as validated, as JSON text; DuckDB gives it its types).
_PENDING = ("message_id", "anonymous_id", "day", "start_us", "received_us", "event")
_JSON_TYPE = {
    "text": '"VARCHAR"',
    "int": '"INTEGER"',
    "long": '"BIGINT"',
    "double": '"DOUBLE"',
    "bool": '"BOOLEAN"',
    "time": '"VARCHAR"',
    "list": '["VARCHAR"]',
}
_COMPUTED = {"start_time", "received_at", *(c for c, _ in _FILE_TARGETS)}
_EVENT_STRUCT = (
    "{"
    + ",".join(f'"{n}":{_JSON_TYPE[k]}' for n, k in FIELDS if n not in _COMPUTED)
    + ',"make_file_targets":{"count":"INTEGER","duration_ms":"DOUBLE","critical":"INTEGER"}'
    + ',"make_targets":[{"name":"VARCHAR","start_ms":"DOUBLE","duration_ms":"DOUBLE",'
    + '"exit_code":"INTEGER","lines":"INTEGER","critical":"BOOLEAN","depth":"INTEGER"}]}'
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (message_id BLOB PRIMARY KEY, day INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY,
    message_id BLOB NOT NULL,
    anonymous_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    event TEXT NOT NULL
);
-- De-duplication in SQLite itself: a message_id seen before is skipped (RAISE(IGNORE) drops the
-- row and the statement goes on), a new one is remembered for good.
CREATE TRIGGER IF NOT EXISTS pending_once BEFORE INSERT ON pending
BEGIN
    SELECT RAISE(IGNORE) WHERE EXISTS (SELECT 1 FROM seen WHERE message_id = NEW.message_id);
END;
CREATE TRIGGER IF NOT EXISTS pending_seen AFTER INSERT ON pending
BEGIN
    INSERT INTO seen (message_id, day) VALUES (NEW.message_id, NEW.day);
END;
CREATE TABLE IF NOT EXISTS parts (
    id INTEGER PRIMARY KEY,
    day INTEGER NOT NULL,
    events TEXT NOT NULL,
    targets TEXT NOT NULL,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trash (path TEXT PRIMARY KEY, dropped REAL NOT NULL);
"""


def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    if read_only:
        db.execute("PRAGMA query_only = 1")
    else:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # the WAL is fsynced at every commit
        db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left free
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, kind: str = "IMMEDIATE") -> Iterator[None]:
    db.execute(f"BEGIN {kind}")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _day_text(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


def _micros(text: str | None) -> int | None:
    if text is None:
        return None
    moment = parse_time(text)
    if moment is None:  # the collector validated it; a direct caller may not have
        raise ValueError("not a date-time with a UTC offset")
    return (moment - EARLIEST) // _MICROSECOND


def to_row(event: Mapping[str, Any], received_us: int) -> tuple[Any, ...]:
    """A validated event as a pending row (the order of `_PENDING`)."""
    start = _micros(str(event["start_time"]))
    assert start is not None
    return (
        bytes.fromhex(str(event["message_id"]).replace("-", "")),
        event["anonymous_id"],
        start // DAY_US,
        start,
        received_us,
        json.dumps(event),
    )


def _typed(source: str) -> str:
    """A SELECT that gives pending's rows (as read from SQLite) their DuckDB types: the event's
    JSON through json_transform, times in UTC."""
    parts = []
    for name, kind in FIELDS:
        if name == "start_time":
            parts.append("make_timestamp(start_us) AS start_time")
        elif name == "received_at":
            parts.append("make_timestamp(received_us) AS received_at")
        elif kind == "time":
            parts.append(f"CAST(CAST(e.{name} AS TIMESTAMPTZ) AS TIMESTAMP) AS {name}")
        elif name.startswith("make_file_"):
            key = dict(_FILE_TARGETS)[name]
            parts.append(f"e.make_file_targets.{key} AS {name}")
        else:
            parts.append(f"e.{name} AS {name}")
    parts.append("CAST(DATE '1970-01-01' + CAST(day AS INTEGER) AS DATE) AS day")
    parts.append("e.make_targets AS make_targets")
    return (
        f"SELECT {', '.join(parts)} FROM"
        f" (SELECT *, json_transform(event, '{_EVENT_STRUCT}') AS e FROM {source})"
    )


def _targets_of(source: str, where: str = "TRUE") -> str:
    """One row per make target of the (typed) events in `source` that match `where`."""
    return (
        "SELECT message_id, anonymous_id, start_time, command, t.name AS name,"
        " t.start_ms AS start_ms, t.duration_ms AS duration_ms, t.exit_code AS exit_code,"
        " t.lines AS lines, t.critical AS critical, t.depth AS depth, day FROM ("
        " SELECT message_id, anonymous_id, start_time, command, day, unnest(make_targets) AS t"
        f" FROM {source} WHERE make_targets IS NOT NULL AND {where})"
    )


def _arrow(rows: list[tuple[Any, ...]]) -> pyarrow.Table:
    """Pending rows (anonymous_id, day, start_us, received_us, event) as an Arrow table, which
    DuckDB reads in place."""
    import pyarrow as pa

    kinds = (pa.string(), pa.int64(), pa.int64(), pa.int64(), pa.string())
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in kinds]
    return pa.table(
        {
            name: pa.array(list(values), kind)
            for name, kind, values in zip(_PENDING[1:], kinds, columns, strict=True)
        }
    )


def _duck() -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(config={"threads": 2, "memory_limit": "256MB"})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(paths: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _settle(written: Path, final: Path) -> None:
    """Give a written file its final name once its bytes are on disk, and make the name
    durable too."""
    fd = os.open(written, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(written, final)
    _fsync_dir(final.parent)


def _durable(con: duckdb.DuckDBPyConnection, query: str, final: Path) -> None:
    """Write a query's rows to a Parquet file at `final`, all of it on disk before it has the
    name (a crash leaves a temporary file, removed at the next start)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.tmp")
    try:
        con.execute(
            f"COPY ({query}) TO {_quote(str(temporary))} (FORMAT parquet, COMPRESSION zstd)"
        )
        _settle(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _durable_days(con: duckdb.DuckDBPyConnection, query: str, top: Path) -> dict[int, Path]:
    """Write a query's rows as one Parquet file per `day` under `top/day=YYYY-MM-DD/`, each on
    disk (fsynced, renamed, its folder fsynced) before this returns: {day: path}."""
    from datetime import date

    staging = top / f".tmp-{uuid.uuid4().hex}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    made: dict[int, Path] = {}
    try:
        con.execute(
            f"COPY ({query}) TO {_quote(str(staging))} (FORMAT parquet, COMPRESSION zstd,"
            " PARTITION_BY (day), WRITE_PARTITION_COLUMNS true, FILENAME_PATTERN 'p{uuid}')"
        )
        for written in sorted(staging.glob("day=*/*.parquet")):
            day = (date.fromisoformat(written.parent.name[4:]) - date(1970, 1, 1)).days
            final = top / written.parent.name / f"{uuid.uuid4().hex}.parquet"
            final.parent.mkdir(exist_ok=True)
            _settle(written, final)
            made[day] = final
    except BaseException:
        for path in made.values():
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return made


class EmbeddedStore:
    """The default Backend: SQLite ingest, Parquet parts, one folder, one collector."""

    def __init__(self, data_dir: Path | str, retention_days: int | None = None) -> None:
        self.folder = Path(data_dir)
        self.retention_days = retention_days
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _take_lock(self.folder / LOCK_NAME)
            self._db = _connect(self.folder / DB_NAME)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the store in {self.folder} ({exc})") from None
        self._write_lock = threading.Lock()
        self.maintainer = Maintainer(self.folder)
        self.maintainer.remove_orphans()

    def write(self, events: Sequence[Mapping[str, object]]) -> int:
        """Store events (validated by the collector): one transaction, committed (fsynced)
        before this returns; duplicates of any message_id ever stored are skipped."""
        now_us = time.time_ns() // 1000
        return self.write_rows([to_row(e, now_us) for e in events])

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """`write` for events already made rows (`to_row`, in the collector's decoding
        processes)."""
        oldest = _oldest_day(self.retention_days)
        kept = [row for row in rows if row[2] >= oldest]  # beyond retention: as if expired
        insert = f"INSERT INTO pending ({', '.join(_PENDING)}) VALUES (?, ?, ?, ?, ?, ?)"
        with self._write_lock:
            try:
                with _transaction(self._db):
                    done = self._db.executemany(insert, kept)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot store events ({_why(exc)})") from None
        return max(done.rowcount, 0)

    def compact(self, force: bool = False) -> int:
        return self.maintainer.compact(force)

    def erase(self, anonymous_id: str) -> int:
        return self.maintainer.erase(anonymous_id)

    def expire(self, older_than_days: int) -> int:
        return self.maintainer.expire(older_than_days)

    def empty_trash(self, grace: float = GRACE_S) -> int:
        return self.maintainer.empty_trash(grace)

    def counts(self) -> tuple[int, int]:
        return self.maintainer.counts()

    def close(self) -> None:
        with self._write_lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self.maintainer.close()
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)


def _oldest_day(retention_days: int | None) -> int:
    """The first UTC day (days since 1970) kept under `retention_days`."""
    if retention_days is None:
        return -(2**62)
    return time.time_ns() // 1000 // DAY_US - retention_days


class Maintainer:
    """Compaction, merging, erasure, retention and the trash of one store folder. Any process
    may hold one (the collector runs them in its worker processes, off the event loop); each
    operation holds the folder's maintenance lock, so they never overlap."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._maint_db = _connect(folder / DB_NAME)
        self._maint_db.executescript(_SCHEMA)
        self._thread_lock = threading.Lock()
        self._maint_lock = _FolderLock(folder / MAINT_LOCK_NAME, self._thread_lock)

    # ---- maintenance: compaction, merging, erasure, retention ----

    def compact(self, force: bool = False) -> int:
        """Move pending events into Parquet parts when enough are waiting (or `force`); the
        number moved."""
        with self._maint_lock:
            db = self._maint_db
            count, first = db.execute("SELECT count(*), min(received_us) FROM pending").fetchone()
            if not count:
                return 0
            old = first is not None and time.time() - first / 1e6 >= COMPACT_AGE_S
            if not (force or old or count >= COMPACT_ROWS):
                return 0
            moved = 0
            while True:
                rows = db.execute(
                    f"SELECT seq, {', '.join(_PENDING[1:])} FROM pending ORDER BY seq LIMIT ?",
                    (COMPACT_BATCH,),
                ).fetchall()
                if not rows:
                    break
                self._write_part([r[1:] for r in rows], rows[-1][0])
                moved += len(rows)
                if len(rows) < COMPACT_BATCH:
                    break
            self._merge()
            self._scrub()  # the moved rows' copies in the log
            return moved

    def _write_part(self, rows: list[tuple[Any, ...]], last_seq: int) -> None:
        """One part per UTC day among `rows`, each day's events and targets files written in
        one pass over the batch, then listed (and the rows left pending) in one transaction."""
        con = _duck()
        try:
            con.register("raw", _arrow(rows))
            con.execute(f"CREATE TEMP TABLE batch AS {_typed('raw')}")
            counts = dict(
                con.execute(
                    "SELECT CAST(day - DATE '1970-01-01' AS INTEGER), count(*)"
                    " FROM batch GROUP BY 1"
                ).fetchall()
            )
            events = _durable_days(
                con, "SELECT * EXCLUDE (make_targets) FROM batch", self.folder / "events"
            )
            targets = _durable_days(con, _targets_of("batch"), self.folder / "targets")
            for day in set(counts) - set(targets):  # a day without any make target: empty file
                targets[day] = self._new_paths(day)[1]
                where = f"day = DATE '1970-01-01' + {int(day)}"
                _durable(con, _targets_of("batch", where), targets[day])
            made = [
                (day, self._rel(events[day]), self._rel(targets[day]), count)
                for day, count in counts.items()
            ]
        finally:
            con.close()
        with _transaction(self._maint_db):
            self._maint_db.executemany(
                "INSERT INTO parts (day, events, targets, rows) VALUES (?, ?, ?, ?)", made
            )
            self._maint_db.execute("DELETE FROM pending WHERE seq <= ?", (last_seq,))

    def _new_paths(self, day: int) -> tuple[Path, Path]:
        name = f"day={_day_text(day)}/{uuid.uuid4().hex}.parquet"
        return self.folder / "events" / name, self.folder / "targets" / name

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.folder))

    def _parts(
        self, where: str = "", args: tuple[Any, ...] = ()
    ) -> list[tuple[int, int, str, str, int]]:
        return self._maint_db.execute(
            f"SELECT id, day, events, targets, rows FROM parts {where} ORDER BY id", args
        ).fetchall()

    def _merge(self) -> None:
        """Rewrite each day that has MERGE_AT parts or more as one part."""
        crowded = self._maint_db.execute(
            "SELECT day FROM parts GROUP BY day HAVING count(*) >= ?", (MERGE_AT,)
        ).fetchall()
        for (day,) in crowded:
            parts = self._parts("WHERE day = ?", (day,))
            self._replace(parts, lambda rel: f"SELECT * FROM read_parquet({rel})")

    def _replace(self, parts: list[tuple[int, int, str, str, int]], select: Any) -> None:
        """Replace `parts` (all of one day) by one part made by `select` over their files."""
        if not parts:
            return
        day = parts[0][1]
        con = _duck()
        try:
            events, targets = self._new_paths(day)
            old_events = _files(str(self.folder / p[2]) for p in parts)
            old_targets = _files(str(self.folder / p[3]) for p in parts)
            _durable(con, select(old_events), events)
            _durable(con, select(old_targets), targets)
            (count,) = con.execute(
                f"SELECT count(*) FROM read_parquet({_quote(str(events))})"
            ).fetchone() or (0,)
        finally:
            con.close()
        now = time.time()
        with _transaction(self._maint_db):
            self._maint_db.executemany("DELETE FROM parts WHERE id = ?", [(p[0],) for p in parts])
            if count:
                self._maint_db.execute(
                    "INSERT INTO parts (day, events, targets, rows) VALUES (?, ?, ?, ?)",
                    (day, self._rel(events), self._rel(targets), count),
                )
            self._maint_db.executemany(
                "INSERT OR REPLACE INTO trash (path, dropped) VALUES (?, ?)",
                [(p, now) for part in parts for p in (part[2], part[3])],
            )
        if not count:
            for path in (events, targets):
                with contextlib.suppress(OSError):
                    path.unlink()

    def erase(self, anonymous_id: str) -> int:
        """Delete every event of `anonymous_id` (pending rows at once, Parquet parts rewritten
        without them); how many. The message ids stay in `seen` (they name nobody), so a replay
        of an erased event is not stored again."""
        with self._maint_lock:
            parts = self._parts()
            erased = 0
            if parts:
                con = _duck()
                try:
                    hits = con.execute(
                        "SELECT filename, count(*) FROM read_parquet("
                        f"{_files(str(self.folder / p[2]) for p in parts)}, filename = true)"
                        " WHERE anonymous_id = ? GROUP BY filename",
                        [anonymous_id],
                    ).fetchall()
                finally:
                    con.close()
                counts = dict(hits)
                for part in parts:
                    found = counts.get(str(self.folder / part[2]), 0)
                    if found:
                        keep = f"WHERE anonymous_id IS DISTINCT FROM {_quote(anonymous_id)}"
                        self._replace(
                            [part],
                            lambda rel, keep=keep: f"SELECT * FROM read_parquet({rel}) {keep}",
                        )
                        erased += found
            with _transaction(self._maint_db):
                done = self._maint_db.execute(
                    "DELETE FROM pending WHERE anonymous_id = ?", (anonymous_id,)
                )
                erased += done.rowcount
            self._empty_trash(0.0)  # the replaced files, and older merged ones, held the events
            self._scrub()
            return erased

    def expire(self, older_than_days: int) -> int:
        """Delete the events of every UTC day that ended more than `older_than_days` ago (and
        their message ids: a replay of one is refused as expired by `write`)."""
        cutoff = time.time_ns() // 1000 // DAY_US - older_than_days
        with self._maint_lock:
            old = self._parts("WHERE day < ?", (cutoff,))
            now = time.time()
            with _transaction(self._maint_db):
                done = self._maint_db.execute("DELETE FROM pending WHERE day < ?", (cutoff,))
                gone = done.rowcount + sum(p[4] for p in old)
                self._maint_db.executemany("DELETE FROM parts WHERE id = ?", [(p[0],) for p in old])
                self._maint_db.executemany(
                    "INSERT OR REPLACE INTO trash (path, dropped) VALUES (?, ?)",
                    [(p, now) for part in old for p in (part[2], part[3])],
                )
                self._maint_db.execute("DELETE FROM seen WHERE day < ?", (cutoff,))
            if gone:
                self._empty_trash(0.0)
                self._scrub()
            return gone

    def empty_trash(self, grace: float = GRACE_S) -> int:
        """Delete replaced files once no report can still be reading them."""
        with self._maint_lock:
            return self._empty_trash(grace)

    def _empty_trash(self, grace: float) -> int:
        due = self._maint_db.execute(
            "SELECT path FROM trash WHERE dropped <= ?", (time.time() - grace,)
        ).fetchall()
        for (path,) in due:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / path).unlink()
        with _transaction(self._maint_db):
            self._maint_db.executemany("DELETE FROM trash WHERE path = ?", due)
        return len(due)

    def _scrub(self) -> None:
        """Copy the write-ahead log into the database and truncate it to nothing: deleted rows
        (overwritten there by secure_delete) leave no copy in the log either. A reader holding
        an old snapshot makes this wait (busy_timeout), then it is done at the next call."""
        with contextlib.suppress(sqlite3.Error):
            self._maint_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def remove_orphans(self) -> None:
        """Files a crash left between writing a part and listing it: never listed, so never
        read; removed (at the collector's start, before anything is written)."""
        with self._maint_lock:
            self._remove_orphans()

    def _remove_orphans(self) -> None:
        known = {p for part in self._parts() for p in (part[2], part[3])}
        known |= {p for (p,) in self._maint_db.execute("SELECT path FROM trash")}
        for top in ("events", "targets"):
            for staging in (self.folder / top).glob(".tmp-*"):
                shutil.rmtree(staging, ignore_errors=True)
            for path in (self.folder / top).glob("day=*/*"):
                if self._rel(path) not in known:
                    with contextlib.suppress(OSError):
                        path.unlink()

    def counts(self) -> tuple[int, int]:
        """(pending rows, rows in parts)."""
        pending = self._maint_db.execute("SELECT count(*) FROM pending").fetchone()[0]
        parts = self._maint_db.execute("SELECT coalesce(sum(rows), 0) FROM parts").fetchone()[0]
        return int(pending), int(parts)

    def close(self) -> None:
        with self._thread_lock, contextlib.suppress(sqlite3.Error):
            self._maint_db.close()


def _why(exc: sqlite3.Error) -> str:
    text = str(exc)
    return text if len(text) < 80 else type(exc).__name__


class _FolderLock:
    """A lock across threads (`thread_lock`) and processes (flock on `path`)."""

    def __init__(self, path: Path, thread_lock: threading.Lock) -> None:
        self.path = path
        self.thread_lock = thread_lock
        self._fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.thread_lock.acquire()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
            self.thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing releases the flock
        self._fd = -1
        self.thread_lock.release()


def _take_lock(path: Path) -> int:
    """One collector per folder: a second one would compact the same rows twice."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreUnavailable(
            f"another collector is using {path.parent} (one collector per --data folder)"
        ) from None
    return fd


def default_data_dir() -> Path:
    """Where `collect` stores and `report` reads when no --data is given: apart from any
    developer's own data (an opt-out there never touches it)."""
    from send_metrics.settings.files import data_dir

    return Path(data_dir("send_metrics-collector"))


# ---- reading ----


def open_for_report(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the relations `events` and `targets` (OPERATOR_CONTRACT.md)
    over everything stored in `data_dir` at this instant, while a collector may be writing;
    `events_all` and `targets_all` hold every stored field."""
    import duckdb

    folder = Path(data_dir)
    if not folder.is_dir():
        raise MetricsError(f"no collected data in {folder} (the folder does not exist)")
    parts: list[tuple[str, str]] = []
    rows: list[tuple[Any, ...]] = []
    path = folder / DB_NAME
    if path.exists():
        try:
            db = _connect(path, read_only=True)
            try:
                with _transaction(db, "DEFERRED"):  # one snapshot: parts and pending agree
                    parts = db.execute("SELECT events, targets FROM parts ORDER BY id").fetchall()
                    rows = db.execute(f"SELECT {', '.join(_PENDING[1:])} FROM pending").fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise MetricsError(f"cannot read the store in {folder} ({_why(exc)})") from None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("pending_raw", _arrow(rows))
    con.execute(f"CREATE TEMP TABLE pending_events AS {_typed('pending_raw')}")
    con.execute(f"CREATE TEMP TABLE pending_targets AS {_targets_of('pending_events')}")
    con.unregister("pending_raw")
    if parts:
        events = _files(str(folder / p[0]) for p in parts)
        targets = _files(str(folder / p[1]) for p in parts)
        con.execute(
            f"CREATE VIEW events_all AS SELECT * FROM read_parquet({events})"
            " UNION ALL BY NAME SELECT * EXCLUDE (make_targets) FROM pending_events"
        )
        con.execute(
            f"CREATE VIEW targets_all AS SELECT * FROM read_parquet({targets})"
            " UNION ALL BY NAME SELECT * FROM pending_targets"
        )
    else:
        con.execute("CREATE VIEW events_all AS SELECT * EXCLUDE (make_targets) FROM pending_events")
        con.execute("CREATE VIEW targets_all AS SELECT * FROM pending_targets")
    con.execute(f"CREATE VIEW events AS SELECT {', '.join(EVENT_COLUMNS)} FROM events_all")
    con.execute(f"CREATE VIEW targets AS SELECT {', '.join(TARGET_COLUMNS)} FROM targets_all")
    return con
