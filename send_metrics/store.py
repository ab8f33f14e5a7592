"""The local SQLite store: the developer's own history of runs and the undelivered queue."""

from __future__ import annotations

import os
import stat
import time

from send_metrics import files, jsontext
from send_metrics.errors import MetricsError, StoreBusy, StoreError
from send_metrics.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from types import TracebackType
    from typing import Any

    from send_metrics.event import Event
    from send_metrics.files import AnyPath
else:
    try:  # the C module under `sqlite3`: the same connection and errors, without the datetime
        import _sqlite3 as sqlite3  # adapters `sqlite3.dbapi2` loads (~5 ms each collected run)
    except ImportError:
        import sqlite3

DB_NAME = "metrics.sqlite3"
USER_VERSION = 1  # the layout below; a store with a higher one is never written
HISTORY_MAX = 10_000  # runs kept for `stats`; the oldest go first
UNRECORDED = "unrecorded-runs"  # one line per run the store was too busy to record (`status`)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    message_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    start_time TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    failed INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_command ON history (command);
CREATE TABLE IF NOT EXISTS queue (
    message_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_created ON queue (created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Counters kept in `meta`; each is shown by `status`.
DROPPED_REJECTED = "dropped_rejected"
DROPPED_OVERFLOW = "dropped_overflow"
DROPPED_EXPIRED = "dropped_expired"
DROPPED_OLD_ID = "dropped_old_id"  # recorded under an earlier yes: never sent under a new one
LAST_ERROR = "last_error"
LAST_DELIVERY = "last_delivery"
NOT_BEFORE = "not_before"  # nothing is sent before this time (Retry-After, or back-off)
BACKOFF_STEP = "backoff_step"  # failures in a row that back off; the wait grows with it
WAIT_FOR = "wait_for"  # which destination NOT_BEFORE is about: a fixed config tries at once
PARTIAL_REJECTED = "partial_rejected"  # records an OTLP collector refused in a partial success
BACKOFF_FIRST_S = 60.0
BACKOFF_MAX_S = 3600.0


class Counts(NamedTuple):
    """The queue's state as `status` shows it."""

    queued: int
    runs: int
    dropped_rejected: int
    dropped_overflow: int
    dropped_expired: int
    last_error: str
    last_delivery: str
    not_before: float
    backoff_step: int = 0
    partial_rejected: int = 0
    dropped_old_id: int = 0


class _Transaction:
    """`with store._write() as db:` one immediate transaction, rolled back on any exception;
    SQLite's and the system's errors become one StoreError. (A class: `contextlib` would cost
    every collected run its import.)"""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from None
        return self.store._db

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.store._db.execute("COMMIT" if exc is None else "ROLLBACK")
        except (sqlite3.Error, OSError) as error:
            raise self._failed(error) from None
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> StoreError:
        kind = StoreBusy if _busy(exc) else StoreError
        return kind(f"cannot write {self.store.path} ({_reason(exc)})")


def db_path(data_dir: str) -> str:
    """The store's file inside an app's data directory."""
    return os.path.join(data_dir, DB_NAME)


class Store:
    """One connection to the store; every method is one short transaction."""

    def __init__(self, path: AnyPath, busy_timeout: float = 1.0):
        self.path = path = os.fspath(path)
        self.notice = ""  # one line for the user when the store had to be repaired
        try:
            self._open(busy_timeout)
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full: not corruption
            self.close()  # never left open beside the next try (see delivery._record)
            kind = StoreBusy if _busy(exc) else StoreError
            raise kind(f"cannot open {path} ({_reason(exc)})") from None
        except sqlite3.DatabaseError as exc:
            # Not a database, or a malformed one: keep it for inspection and start anew, so
            # one bad file does not stop every later run from being recorded.
            aside = path + ".corrupt"
            self.close()
            try:
                os.replace(path, aside)
                for suffix in ("-wal", "-shm"):
                    try:
                        os.unlink(path + suffix)
                    except FileNotFoundError:
                        pass
                self._open(busy_timeout)
            except (sqlite3.Error, OSError) as again:
                raise StoreError(f"cannot open {path} ({_reason(again)})") from None
            self.notice = (
                f"{path} was not a usable database ({_reason(exc)}); "
                f"moved aside to {os.path.basename(aside)}, starting anew"
            )
        except OSError as exc:
            raise StoreError(f"cannot open {path} ({_reason(exc)})") from None

    def _open(self, busy_timeout: float) -> None:
        path = self.path
        _check_files(path)
        # Created private; SQLite gives its -wal and -shm files the same mode. Never through a
        # symlink, never a FIFO (SQLite would block reading it) or a device. Closing this raw
        # descriptor drops every POSIX lock the process holds on the file: so never a second
        # Store of one file while another is open in this process (see delivery.report).
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{path} is not a regular file; refused")
            os.chmod(fd, 0o600)
        finally:
            os.close(fd)
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > USER_VERSION:  # a newer send_metrics wrote it: never downgrade its data
            self.close()
            raise StoreError(
                f"{path} was written by a newer send_metrics (store version {version}, this "
                f"one knows {USER_VERSION}); left untouched, nothing recorded in it"
            )
        if version != USER_VERSION:
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._write():
                for statement in _SCHEMA.split(";"):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {USER_VERSION}")
        self._db.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        try:
            self._db.close()
        except (sqlite3.Error, AttributeError):
            pass

    def _write(self) -> _Transaction:
        return _Transaction(self)

    def _bump(self, db: sqlite3.Connection, key: str, by: int) -> None:
        if by:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + ?",
                (key, str(by), by),
            )

    def _set(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def record(
        self, event: Event, *, queue: bool, max_events: int = 1000, max_age_days: float = 30.0
    ) -> None:
        """Add a run to the history and, for a network sink, to the queue, within its bounds."""
        text = jsontext.dumps(event, separators=(",", ":"), sort_keys=True)
        failed = int(event.get("exit_code") != 0)
        now = time.time()
        with self._write() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event["message_id"],
                    event["command"],
                    event["start_time"],
                    event["duration_ms"],
                    failed,
                    text,
                ),
            ).lastrowid
            if added and added > HISTORY_MAX:
                db.execute("DELETE FROM history WHERE rowid <= ?", (added - HISTORY_MAX,))
            if not queue:
                return
            db.execute(
                "INSERT OR IGNORE INTO queue (message_id, created, event) VALUES (?, ?, ?)",
                (event["message_id"], now, text),
            )
            expired = db.execute(
                "DELETE FROM queue WHERE created < ?", (now - max_age_days * 86400,)
            ).rowcount
            self._bump(db, DROPPED_EXPIRED, expired)
            over = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] - max_events
            if over > 0:
                db.execute(
                    "DELETE FROM queue WHERE message_id IN (SELECT message_id FROM queue "
                    "ORDER BY created, rowid LIMIT ?)",
                    (over,),
                )
                self._bump(db, DROPPED_OVERFLOW, over)

    def claim(self, limit: int, lease_s: float) -> list[Event]:
        """Take up to `limit` queued events, oldest first, that no other process is sending."""
        now = time.time()
        with self._write() as db:
            rows = db.execute(
                "SELECT message_id, event FROM queue WHERE lease_until < ? "
                "ORDER BY created, rowid LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE queue SET lease_until = ?, attempts = attempts + 1 WHERE message_id = ?",
                [(now + lease_s, r[0]) for r in rows],
            )
        return [jsontext.loads(r[1]) for r in rows]

    def delivered(self, ids: list[str], refused: int = 0) -> None:
        """Events the endpoint accepted leave the queue for good (`refused`: how many of them
        an OTLP collector said it dropped, counted); any back-off ends."""
        with self._write() as db:
            db.executemany("DELETE FROM queue WHERE message_id = ?", [(i,) for i in ids])
            self._bump(db, PARTIAL_REJECTED, refused)
            self._set(db, LAST_DELIVERY, _utc_now())
            db.execute(
                "DELETE FROM meta WHERE key IN (?, ?, ?, ?)",
                (LAST_ERROR, NOT_BEFORE, BACKOFF_STEP, WAIT_FOR),
            )

    def failed(
        self,
        ids: list[str],
        error: str,
        retry_after: float | None,
        backoff: bool = False,
        destination: str = "",
    ) -> None:
        """Events that may succeed later stay queued; the endpoint is left alone while it asks
        (Retry-After) and, when it is unreachable or refuses our credentials, for a back-off
        that grows with each failure in a row."""
        with self._write() as db:
            db.executemany(
                "UPDATE queue SET lease_until = 0 WHERE message_id = ?", [(i,) for i in ids]
            )
            self._set(db, LAST_ERROR, f"{_utc_now()} {_masked(error)}")
            wait = retry_after or 0.0
            if backoff:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (BACKOFF_STEP,))
                step = int((row.fetchone() or ("0",))[0]) + 1
                self._set(db, BACKOFF_STEP, str(step))
                wait = max(wait, backoff_seconds(step))
            if wait:
                self._set(db, NOT_BEFORE, str(time.time() + wait))
                self._set(db, WAIT_FOR, destination)

    def not_before(self, destination: str = "") -> float:
        """Until when (epoch seconds) runs sending to `destination` only queue; 0 when sending
        is allowed (a wait recorded for another destination does not count)."""
        try:
            return _waiting(self._db, destination)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({_reason(exc)})") from None

    def release(self, ids: list[str]) -> None:
        """Claimed events that may not be sent now stay queued, free for a later send."""
        with self._write() as db:
            db.executemany(
                "UPDATE queue SET lease_until = 0 WHERE message_id = ?", [(i,) for i in ids]
            )

    def discard(self, ids: list[str] | None = None) -> int:
        """Queued events that must never be sent (recorded under an older id) leave the queue,
        counted; None: every queued event (a new yes, with a new id). How many left."""
        with self._write() as db:
            if ids is None:
                gone = db.execute("DELETE FROM queue").rowcount
            else:
                db.executemany("DELETE FROM queue WHERE message_id = ?", [(i,) for i in ids])
                gone = len(ids)
            self._bump(db, DROPPED_OLD_ID, gone)
        return max(gone, 0)

    def rejected(self, ids: list[str], error: str) -> None:
        """Events the endpoint refused for good are dropped and counted, never silently."""
        with self._write() as db:
            db.executemany("DELETE FROM queue WHERE message_id = ?", [(i,) for i in ids])
            self._bump(db, DROPPED_REJECTED, len(ids))
            self._set(db, LAST_ERROR, f"{_utc_now()} {_masked(error)}")

    def counts(self) -> Counts:
        """Queued and dropped counts and the last delivery error, for `status`."""
        try:
            queued = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
            runs = self._db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({_reason(exc)})") from None
        return Counts(
            queued,
            runs,
            int(meta.get(DROPPED_REJECTED, 0)),
            int(meta.get(DROPPED_OVERFLOW, 0)),
            int(meta.get(DROPPED_EXPIRED, 0)),
            meta.get(LAST_ERROR, ""),
            meta.get(LAST_DELIVERY, ""),
            float(meta.get(NOT_BEFORE, 0)),
            int(meta.get(BACKOFF_STEP, 0)),
            int(meta.get(PARTIAL_REJECTED, 0)),
            int(meta.get(DROPPED_OLD_ID, 0)),
        )

    def history(self) -> list[tuple[str, str, float, int]]:
        """Every recorded run as (command, start_time, duration_ms, failed), oldest first."""
        try:
            return self._db.execute(
                "SELECT command, start_time, duration_ms, failed FROM history "
                "ORDER BY start_time, rowid"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({_reason(exc)})") from None

    def events_of(self, command: str) -> list[dict[str, Any]]:
        """The recorded events of one command, oldest first; one that is not JSON is skipped."""
        try:
            rows = self._db.execute(
                "SELECT event FROM history WHERE command = ? ORDER BY start_time, rowid",
                (command,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({_reason(exc)})") from None
        return [e for e in (_parsed(text) for (text,) in rows) if e is not None]

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        """The newest recorded events, newest last (`send_metrics trace`); one that is not
        JSON is skipped."""
        try:
            rows = self._db.execute(
                "SELECT event FROM history ORDER BY start_time DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path} ({_reason(exc)})") from None
        return [e for e in (_parsed(text) for (text,) in reversed(rows)) if e is not None]


def _parsed(text: str) -> dict[str, Any] | None:
    """A stored event, or None for a row that is not a JSON object."""
    try:
        event = jsontext.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _file_uri(path: str) -> str:
    """A `file:` URI for SQLite, every byte but the plain ones percent-encoded."""
    plain = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-._~"
    raw = os.fsencode(os.path.abspath(path))
    return "file://" + "".join(chr(b) if b in plain else f"%{b:02X}" for b in raw)


def peek_not_before(path: str, destination: str) -> float:
    """`Store.not_before` read-only, without creating or repairing anything: for the thread
    that runs beside the child, which must neither print nor change the store."""
    try:
        db = sqlite3.connect(f"{_file_uri(path)}?mode=ro", uri=True, timeout=0.2)
        try:
            return _waiting(db, destination)
        finally:
            db.close()
    except (sqlite3.Error, ValueError):
        return 0.0


def _waiting(db: sqlite3.Connection, destination: str) -> float:
    rows = dict(
        db.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (NOT_BEFORE, WAIT_FOR)
        ).fetchall()
    )
    if rows.get(WAIT_FOR, "") != destination:
        return 0.0
    return float(rows.get(NOT_BEFORE, 0.0))


def backoff_seconds(step: int) -> float:
    """The wait after `step` failures in a row: 1 min, doubling up to 1 h, each with +-20 %
    jitter so that a team's laptops coming back online do not all retry at once."""
    base = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(step - 1, 16))
    jitter = 0.8 + 0.4 * int.from_bytes(os.urandom(2), "big") / 65535
    return min(BACKOFF_MAX_S, base * jitter)


def _check_files(path: str) -> None:
    """Our directory private, and the store and SQLite's side files never symlinks."""
    files.private_dir(os.path.dirname(path))
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            files.refuse_link(path + suffix)
        except MetricsError as exc:
            raise StoreError(str(exc)) from None


def _busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": another connection holds the lock, nothing is wrong."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
    return "locked" in str(exc) or "busy" in str(exc)


def copies(data_dir: str) -> list[str]:
    """Every file holding history or queue: the store, SQLite's side files, a moved-aside copy,
    and the count of runs that could not be recorded."""
    found = []
    for name in (DB_NAME, DB_NAME + ".corrupt"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = os.path.join(data_dir, name + suffix)
            if os.path.lexists(path):
                found.append(path)
    if os.path.lexists(os.path.join(data_dir, UNRECORDED)):
        found.append(os.path.join(data_dir, UNRECORDED))
    return found


def count_unrecorded(data_dir: str, forget: bool = False) -> None:
    """Count one run whose event could not be recorded because the store stayed busy: a line
    (its time) appended to a file of its own, as the store itself could not be written.
    `forget`: delete the count instead (the data it belongs to was deleted meanwhile)."""
    path = os.path.join(data_dir, UNRECORDED)
    if forget:
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, (_utc_now() + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def unrecorded(data_dir: str) -> int:
    """How many runs `count_unrecorded` counted (shown by `status`)."""
    try:
        return files.read_small(os.path.join(data_dir, UNRECORDED), follow=False).count(b"\n")
    except (OSError, MetricsError):
        return 0


def wipe(data_dir: str) -> bool:
    """Delete the history and queue and every copy of them; True when there was something to
    delete. A symlink is removed itself, never what it points to."""
    found = copies(data_dir)
    for path in found:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {path} ({exc.strerror or exc})") from None
    return bool(found)


def _masked(error: str) -> str:
    """An error as stored: any URL in it cut to scheme://host:port (paths may hold tokens)."""
    from send_metrics.transport import mask_urls  # deferred: only a failed send stores an error

    return mask_urls(error)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
