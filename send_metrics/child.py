"""What the rest of the code knows of a run's child: how it ended (`ChildResult`, which the
runner makes and the event and the make trace read), and the terminal it shares with us
(`in_foreground`, and `Interrupted` for a person's interrupt once it has ended; the consent
question reads both).

Plain data and built-in modules only: the runner imports this module before its child starts
(the rule in `run.fastpath`'s docstring).
"""

from __future__ import annotations

import os
import sys


class Interrupted(BaseException):
    """Raised in the wrapper when the user interrupts it after the child has ended."""


def in_foreground() -> bool:
    """Whether we are in the foreground process group of the terminal on stdin."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


class ChildResult:
    """What happened to the child: how it ended, when, how long, and what it used. (Plain
    data, not a NamedTuple: see `fastpath`.)"""

    __slots__ = (
        "cpu_system_s",
        "cpu_user_s",
        "duration_ms",
        "exit_code",
        "interrupted",
        "peak_memory_bytes",
        "signal",
        "start_epoch",
    )

    def __init__(
        self,
        exit_code: int | None,
        signal: int | None,
        interrupted: bool,
        start_epoch: float,
        duration_ms: float,
        cpu_user_s: float | None,  # None: not known (an included make's, seen from outside)
        cpu_system_s: float | None,
        peak_memory_bytes: int | None,
    ) -> None:
        self.exit_code = exit_code
        self.signal = signal
        self.interrupted = interrupted
        self.start_epoch = start_epoch
        self.duration_ms = duration_ms
        self.cpu_user_s = cpu_user_s
        self.cpu_system_s = cpu_system_s
        self.peak_memory_bytes = peak_memory_bytes

    @property
    def status(self) -> int:
        """The shell's view of the outcome: the exit code, or 128+N for death by signal N."""
        return self.exit_code if self.exit_code is not None else 128 + (self.signal or 0)
