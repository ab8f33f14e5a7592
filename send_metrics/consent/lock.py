"""The state lock, and the checks made under it that keep "no event after an opt-out" true:
right before a run records its event (`recording`) and before each request a sender makes
(`sending`), the decision is read again and held against the consent the run decided once
(`decision.Verdict`, made by `decision.decide`). Recording and sending call down into this
module, never back up into `consent`.
"""

from __future__ import annotations

import os

from send_metrics.consent.decision import Decision, Verdict, read_decision
from send_metrics.errors import ConfigError
from send_metrics.settings.files import state_path

# Deferred imports: fcntl and time only where the lock is taken; `files` to make its folder.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import TracebackType
    from typing import TypeVar

    from send_metrics.event.event import Event
    from send_metrics.event.store import Store

    _T = TypeVar("_T")


class locked:  # a class (no contextlib), used as `with locked(path):` like a function
    """Serialise the state among concurrent wrappers and commands. Senders hold it shared while
    a request is in flight, so `opt-out` returns only once no event can leave any more."""

    def __init__(self, path: str, shared: bool = False, until: float | None = None) -> None:
        self.folder = os.path.dirname(path)
        self.shared = shared
        self.until = until  # a monotonic time to give up at (a run's deadline); None: wait
        self.fd = -1
        self.gate = -1

    def __enter__(self) -> None:
        import fcntl

        from send_metrics.settings import files

        files.private_dir(self.folder)
        # Two files, so that a writer is never starved by senders that keep taking the shared
        # lock (`flush` sends batch after batch): everyone passes the gate, exclusively; a
        # sender lets it go once it holds the state lock, a writer keeps it. So `opt-out` waits
        # for the request in flight only, and no new one starts meanwhile.
        gate = self._open(".gate")
        try:
            self._take(gate, fcntl.LOCK_EX)
            self.fd = self._open(".lock")
            try:
                self._take(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
            except BaseException:
                os.close(self.fd)
                raise
        except BaseException:
            os.close(gate)
            raise
        if self.shared:
            os.close(gate)
        else:
            self.gate = gate

    def _take(self, fd: int, operation: int) -> None:
        """flock, given up at `until`: a run never waits past its deadline for others."""
        import fcntl
        import time

        if self.until is None:
            fcntl.flock(fd, operation)
            return
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= self.until:
                    from send_metrics.errors import StoreBusy

                    raise StoreBusy(
                        "another send_metrics holds the state lock (an opt-out or opt-in in "
                        "progress)"
                    ) from None
                time.sleep(0.005)

    def _open(self, name: str) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(os.path.join(self.folder, name), flags, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot write in {self.folder} ({exc.strerror or exc})") from None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self.fd)
        if not self.shared:
            os.close(self.gate)


def decision_at(path: str) -> Decision:
    """The recorded decision; an unreadable one is no decision."""
    try:
        return read_decision(path)
    except ConfigError:
        return Decision()


class _Checked:
    """The state lock held shared around a check of the decision, read again under it: what a
    run does right before it records, and a sender before each request. `_hold` takes the lock
    and gives the check's answer (the lock is let go at once if the check fails)."""

    def __init__(self, verdict: Verdict, until: float | None = None) -> None:
        self.verdict = verdict
        self.lock = locked(state_path(verdict.settings.app), shared=True, until=until)

    def _hold(self, check: Callable[[Decision], _T]) -> _T:
        self.lock.__enter__()
        try:
            return check(decision_at(state_path(self.verdict.settings.app)))
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lock.__exit__(kind, exc, tb)


class recording(_Checked):  # a class (no contextlib), used as `with recording(...) as allowed:`
    """Hold the state lock while an event is recorded, and say whether it may be: the decision
    is read again right before, so a wrapper that was running during `opt-out` records nothing.
    Shared, as a sender holds it: recording only reads the decision (SQLite orders the writes),
    so a `flush` in flight never holds a run up; an opt-out waiting for its turn does, until
    `until` at most. The event was built under `verdict`'s decision and id."""

    def __enter__(self) -> bool:
        return self._hold(self._allowed)

    def _allowed(self, decision: Decision) -> bool:
        made_as = self.verdict.decision.anonymous_id
        return self.verdict.still(decision) and decision.anonymous_id == made_as


class _SendCheck(_Checked):
    """One sender's check (see `sending`), held around one request."""

    def __init__(self, verdict: Verdict, db: Store, events: list[Event]) -> None:
        super().__init__(verdict)
        self.db = db
        self.events = events

    def __enter__(self) -> list[Event] | None:
        return self._hold(self._allowed)

    def _allowed(self, decision: Decision) -> list[Event] | None:
        events = self.events
        if not self.verdict.still(decision):
            self.db.release([e["message_id"] for e in events])
            return None
        now = decision.anonymous_id
        stale = [e["message_id"] for e in events if e["anonymous_id"] != now]
        if stale:
            self.db.discard(stale)
        return [e for e in events if e["anonymous_id"] == now]


def sending(
    verdict: Verdict, db: Store
) -> Callable[[list[Event]], AbstractContextManager[list[Event] | None]]:
    """The check a sender makes before each request: under the shared state lock, the events
    that may leave now (the current yes, the current id); None when none may (stop sending).
    Events recorded under an older id are dropped from the queue, never sent."""
    return lambda events: _SendCheck(verdict, db, events)
