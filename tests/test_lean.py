"""`lean.threads` does what `threading.Thread(daemon=True)` does for our two threads, compared
with `threading` itself; and its threads never take a signal meant for the main thread."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from collections.abc import Callable

import pytest

from send_metrics.lean import threads


def _theirs(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("start", [threads.start_thread, _theirs], ids=["ours", "threading"])
def test_join_waits_until_the_work_is_done_or_the_timeout(start: Callable) -> None:
    gate = _thread.allocate_lock()
    gate.acquire()
    runs: list[float] = []

    def work() -> None:
        with gate:  # held until the test lets it go
            runs.append(time.monotonic())

    worker = start(work, "test")
    began = time.monotonic()
    worker.join(0.2)
    assert time.monotonic() - began >= 0.19  # gave up at the timeout
    assert worker.is_alive() and runs == []  # the work goes on
    gate.release()
    worker.join()
    assert not worker.is_alive()
    assert len(runs) == 1  # ran once
    worker.join(0)  # joining a finished thread returns at once, again
    assert not worker.is_alive()


def test_our_threads_block_every_signal_the_main_thread_takes() -> None:
    """A signal sent to the process while our thread runs reaches the main thread's handlers."""
    seen: list[set[int]] = []
    ours = set(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    worker = threads.start_thread(
        lambda: seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, []))), "test"
    )
    worker.join(5)
    blockable = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
    assert seen and blockable <= seen[0]
    assert set(signal.pthread_sigmask(signal.SIG_BLOCK, [])) == ours  # ours is as it was
