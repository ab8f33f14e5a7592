"""Daemon threads on `_thread`, standing in for `threading.Thread(daemon=True)`.

A collected run uses two threads (the prefetch while the child runs, the sender), which need
only `join(timeout)` and `is_alive()`; they block every signal, so signals reach the main
thread. Replaces `threading.Thread`. Saves `import threading`: 9.1 ms against 0.7 ms for this
module (`python -X importtime`, docs/design.md "The stand-ins"). Held equal by
`tests/test_lean.py`, against `threading.Thread` doing the same work.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal  # what `signal` wraps in enums, which cost ~3 ms at start

# Every signal a thread may block (SIGKILL and SIGSTOP cannot be): all go to the main thread.
_BLOCKED = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


class Worker:
    """Work on a thread of its own, abandoned at exit like a daemon thread, with `join(timeout)`
    and `is_alive()`. Built on `_thread`: `threading` costs every collected run ~3 ms to import,
    for two threads that need nothing more."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.name = name
        self._target = target
        self._running = _thread.allocate_lock()
        self._running.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._running.release()
            raise

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._running.release()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the work is done, or `timeout` seconds."""
        if self._running.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._running.release()

    def is_alive(self) -> bool:
        return self._running.locked()


def start_thread(target: Callable[[], None], name: str) -> Worker:
    """A daemon thread that never receives our signals, so they always reach the main thread;
    RuntimeError when no thread can start (`ulimit -u`)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        return Worker(target, name)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
