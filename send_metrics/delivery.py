"""Delivery: the one place that decides where events go, records them, and drives the queue."""

from __future__ import annotations

import os
import sys
import time

from send_metrics import config, runner
from send_metrics.errors import DeliveryError, MetricsError, StoreBusy
from send_metrics.output import warn
from send_metrics.records import NamedTuple

MAX_LEASE_S = 300.0  # a claimed event goes back to the queue after this, whatever happened
# How long a run waits for other processes holding the store before its event is given up.
RECORD_WAIT_S = 30.0

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from send_metrics.config import Settings
    from send_metrics.event import Event
    from send_metrics.sinks import HttpClient, Target
    from send_metrics.store import Store


# Deferred imports: a wrapped run loads the sinks and the store on its prefetch thread
# while the child runs, and only once consent is known.


def destination(settings: Settings) -> tuple[Target | None, str | None]:
    """Where events go: (target, None); (None, None) for the local sink or SEND_METRICS_DEBUG;
    (None, problem) when the operator's sink settings are incomplete."""
    from send_metrics import sinks

    if settings.sink == "local" or config.env_flag("SEND_METRICS_DEBUG"):
        return None, None
    if settings.sink == "otlp" and sinks.otel_disabled():
        return None, None  # OTEL_SDK_DISABLED=true: the history only, as with the local sink
    try:
        return sinks.resolve(settings), None
    except MetricsError as exc:
        return None, str(exc)


def _store_path(settings: Settings) -> str:
    from send_metrics import store
    from send_metrics.files import data_dir

    return store.db_path(data_dir(settings.app))


def _open_store(settings: Settings, busy_timeout: float = 1.0) -> Store:
    from send_metrics import store

    db = store.Store(_store_path(settings), busy_timeout=busy_timeout)
    if db.notice:
        warn(db.notice)
    return db


def report(
    event: Event, settings: Settings, deadline: float, client: HttpClient | None = None
) -> None:
    """Store the event in the history and queue, then deliver the queue until the deadline."""
    from send_metrics import consent

    target, error = destination(settings)
    networked = target is not None or error is not None  # an incomplete config keeps events
    # Other wrappers hold the store for moments (the state lock to read the decision, SQLite's
    # write lock to record), which on a loaded machine can stretch to seconds: a run waits for
    # them up to RECORD_WAIT_S, far past its deadline, so no event is lost to a busy machine.
    # Only a holder that is stuck (a stopped process) makes a run give up, counted in `status`.
    until = max(deadline, time.monotonic() + RECORD_WAIT_S)
    # One connection, opened once and kept for every try: SQLite's locks are POSIX locks, which
    # a process loses on closing any descriptor of the file, and another process would then
    # take itself for the last one and delete the WAL this one is about to commit to. Not
    # closed: the process ends right after, and an abandoned sender may still use it.
    db: Store | None = None
    while True:
        try:
            with consent.recording(settings, event["anonymous_id"], until=until) as allowed:
                if not allowed:
                    return  # an opt-out (or a changed disclosure) since the run began
                if db is None:  # SQLite waits a moment at a time: a Ctrl-C acts between two
                    db = _open_store(settings, busy_timeout=0.25)
                db.record(
                    event,
                    queue=networked,
                    max_events=settings.queue_max_events,
                    max_age_days=settings.queue_max_age_days,
                )
            break
        except StoreBusy as exc:
            if time.monotonic() >= until:
                _count_unrecorded(settings)
                raise StoreBusy(
                    f"{exc}: still busy after {RECORD_WAIT_S:g} s; this run's event is not "
                    "recorded (counted in `send_metrics status`)"
                ) from None
            time.sleep(0.01)
    if config.env_flag("SEND_METRICS_DEBUG"):
        import json

        sys.stderr.write("send_metrics debug: " + json.dumps(event) + "\n")
    if target is not None:
        for note in target.notes:
            warn(note)
        error = flush(db, target, deadline, client=client, check=consent.sending(settings, db))
    if error and error.endswith("(event dropped)"):
        warn(error)  # refused for good: counted in `status`, never queued again
    elif error:
        warn(f"{error}; the event is queued for a later run or `send_metrics flush`")


def _count_unrecorded(settings: Settings) -> None:
    """Count a run the busy store cost its event, unless the data is gone meanwhile: without
    the lock, an opt-out may have deleted the count just now, so it is checked after too."""
    from send_metrics import consent, store
    from send_metrics.files import data_dir

    folder = data_dir(settings.app)
    if consent.current_grants(settings):
        store.count_unrecorded(folder)
        if not consent.current_grants(settings):
            store.count_unrecorded(folder, forget=True)


class FlushOutcome(NamedTuple):
    """What `send_metrics flush` did: where to, how many were queued, accepted, dropped (refused
    for good, or recorded under an older id) and left, and the last error."""

    shown: str  # the endpoint as it may be printed; empty when nothing is sent from here
    reason: str  # why nothing is sent (local sink, debug), when `shown` is empty
    before: int
    left: int
    error: str | None
    accepted: int = 0
    dropped: int = 0
    refused: int = 0  # records an OTLP collector refused in a partial success (of the accepted)


def _gone(db: Store) -> tuple[int, int]:
    """(events dropped from the queue so far, records refused in partial successes so far)."""
    c = db.counts()
    return c.dropped_rejected + c.dropped_old_id + c.dropped_expired, c.partial_rejected


def flush_now(settings: Settings, timeout: float) -> FlushOutcome:
    """Deliver the whole queue now (the `flush` command), under the same decision as a run."""
    from send_metrics import consent

    if config.metrics_disabled():
        return FlushOutcome(
            "", "DO_NOT_TRACK or SEND_METRICS_DISABLED is set: nothing is sent.", 0, 0, None
        )
    target, problem = destination(settings)
    if problem:
        raise DeliveryError(problem)
    if target is None:
        reason = "The sink is 'local': nothing is ever sent."
        if config.env_flag("SEND_METRICS_DEBUG") and settings.sink != "local":
            reason = "SEND_METRICS_DEBUG is set: events are printed, not sent"
        elif settings.sink != "local":
            reason = "OTEL_SDK_DISABLED=true: nothing is sent"
        return FlushOutcome("", reason, 0, 0, None)
    for note in target.notes:
        warn(note)
    if not os.path.exists(_store_path(settings)):
        return FlushOutcome(target.shown, "", 0, 0, None)
    why = consent.why_not_sending(settings)
    if why:
        return FlushOutcome("", f"Nothing is sent: {why}.", 0, 0, None)
    db = _open_store(settings)
    before = db.counts().queued
    gone = _gone(db)
    sent: list[str] = []
    error = flush(
        db,
        target,
        time.monotonic() + timeout,
        batch=400,
        force=True,
        check=consent.sending(settings, db),
        limit=f"the flush timeout (--timeout {timeout:g})",
        accepted=sent,
    )
    stopped = consent.why_not_sending(settings)
    if stopped:  # an opt-out (or a reset) while it ran: the rest was deleted, or stays unsent
        return FlushOutcome("", f"Stopped: {stopped}.", before, 0, None)
    left = db.counts().queued
    dropped, refused = (now - then for now, then in zip(_gone(db), gone, strict=True))
    dropped = max(0, min(dropped, before - len(sent)))  # a run's overflow meanwhile is not ours
    return FlushOutcome(target.shown, "", before, left, error, len(sent), dropped, refused)


def backing_off(settings: Settings, target: Target) -> bool:
    """True while runs only queue (Retry-After or a back-off): nothing may connect, not even
    the connection prepared while the child runs."""
    from send_metrics import store

    path = _store_path(settings)
    return os.path.exists(path) and store.peek_not_before(path, target.fingerprint) > time.time()


class _Unchecked:
    """No check around a send: every event may leave (a flush from tests and tools)."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events

    def __enter__(self) -> list[Event] | None:
        return self.events

    def __exit__(self, *exc: object) -> None:
        return None


def flush(
    db: Store,
    target: Target,
    deadline: float,
    batch: int = 100,
    client: HttpClient | None = None,
    force: bool = False,
    check: Callable[[list[Event]], AbstractContextManager[list[Event] | None]] | None = None,
    limit: str = "report.deadline",
    accepted: list[str] | None = None,
) -> str | None:
    """Deliver queued events oldest first until done or the deadline; the last error, if any.
    While the endpoint asked to wait or is backed off, nothing is tried unless `force` (the
    `flush` command always tries). `check` is entered around each send: it yields the events
    that may leave, None to stop. `limit` names what set the deadline, for messages;
    `accepted` gets the ids the endpoint accepted."""
    outcome: dict[str, str | None] = {"error": None}
    claimed: list[str] = []  # appended by the sender thread, read here
    if target.sink == "http":
        # One request per event there: claim one at a time, so that `check` (the state lock)
        # is held for one request, and `opt-out` never waits for a whole backlog to leave.
        batch = 1
    if not force and db.not_before(target.fingerprint) > time.time():
        return None

    settled: set[str] = set()  # ids whose request got an answer, of every batch
    # Who writes the outcome: the sender, or this thread once it gives the sender up at the
    # deadline; never both (a timeout at the deadline itself would count one failure twice).
    import _thread

    writing = _thread.allocate_lock()
    verdict = {"abandoned": False, "failed": False}

    def work() -> None:
        from send_metrics import sinks

        while time.monotonic() < deadline:
            # The lease outlives this process's deadline by a little: a wrapper killed while
            # sending leaves its events to others soon after, never while it may still send.
            # Never more than a few minutes, even for `flush --timeout inf`.
            lease = min(deadline - time.monotonic() + 2.0, MAX_LEASE_S)
            events = db.claim(batch, lease_s=lease)
            if not events:
                return
            claimed.extend(e["message_id"] for e in events)
            stop = False

            def on_result(ids: list[str], exc: DeliveryError | None, refused: int) -> None:
                nonlocal stop
                with writing:
                    if verdict["abandoned"]:
                        stop = True  # given up at the deadline: the waiting side wrote it
                        return
                    settled.update(ids)
                    if exc is None:
                        db.delivered(ids, refused)
                        if accepted is not None:
                            accepted.extend(ids)
                    elif exc.retry:
                        db.failed(ids, str(exc), exc.retry_after, exc.backs_off, target.fingerprint)
                        outcome["error"] = str(exc)
                        verdict["failed"] = True
                        stop = True
                    else:
                        db.rejected(ids, str(exc))
                        outcome["error"] = f"{exc} (event dropped)"

            with check(events) if check else _Unchecked(events) as allowed:
                if allowed is None:
                    return
                try:
                    sinks.deliver(target, allowed, deadline, on_result, client, limit)
                except MetricsError as exc:
                    with writing:
                        if not verdict["abandoned"]:
                            ids = [e["message_id"] for e in allowed]
                            db.failed(ids, str(exc), None, True, target.fingerprint)
                            outcome["error"] = str(exc)
                            verdict["failed"] = True
                    return
                if stop:  # the rest of the batch was never tried: free it for the next send
                    db.release([e["message_id"] for e in allowed if e["message_id"] not in settled])
            if stop:
                return

    def guarded() -> None:
        try:
            work()
        except MetricsError as exc:
            outcome["error"] = str(exc)
        except Exception as exc:
            outcome["error"] = f"delivery failed ({type(exc).__name__})"

    thread = runner.start_thread(guarded, "send_metrics-send")
    left = deadline - time.monotonic()
    thread.join(None if left == float("inf") else max(0.0, left))
    if thread.is_alive():
        with writing:
            verdict["abandoned"] = True
            failed = verdict["failed"]
        if failed:  # the sender's own timeout, at the deadline: recorded once, by it
            return outcome["error"]
        error = f"the endpoint did not answer within {limit}"
        # The sender is abandoned mid-request; free its claims so the next run or flush can
        # send them at once. A separate connection: the sender may be inside a transaction.
        from send_metrics import store

        try:
            if not os.path.exists(db.path):
                return error  # deleted meanwhile (opt-out): nothing to free, nothing to create
            other = store.Store(db.path, busy_timeout=0.2)
            other.failed(claimed[:], error, None, True, target.fingerprint)  # unreachable
            other.close()
        except MetricsError:
            pass  # the claims' short lease runs out on its own
        return error
    return outcome["error"]
