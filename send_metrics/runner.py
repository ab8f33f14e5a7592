"""Start the wrapped child, pass signals on to it, wait for it, measure it, and end like it.

This module is on the hot path: it follows the rule in `fastpath`'s docstring.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    import threading
    from collections.abc import Callable, Iterable, Mapping
    from typing import NoReturn
else:
    import _signal as signal  # what `signal` wraps in enums, which cost ~3 ms at start

# Signals a user sends to stop a command; they must reach the child, never kill the wrapper.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_WAITED = {*FORWARDED, signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1
_SI_KERNEL = 0x80  # Linux si_code of signals the terminal sends to the whole foreground group
_CORE_SIGNALS = {
    signal.SIGQUIT,
    signal.SIGABRT,
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGSYS,
    signal.SIGTRAP,
    signal.SIGXCPU,
    signal.SIGXFSZ,
}
# Python ignores these at start-up; a directly run command would see them at their default.
_RESTORED = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name)
)


class Interrupted(BaseException):
    """Raised in the wrapper when the user interrupts it after the child has ended."""


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
        cpu_user_s: float,
        cpu_system_s: float,
        peak_memory_bytes: int,
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


def _on_interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


class Child:
    """One child process: creating it starts it; then `wait`, then `release`."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self._use_sigwait = hasattr(signal, "sigtimedwait")
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
        self.interrupted = False
        self.start_epoch = time.time()
        self._start = time.monotonic()
        try:
            spawn = _spawn_tied if sys.platform == "linux" else _spawn
            self.pid = spawn(argv, os.environ if env is None else env, self._old_mask)
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            from send_metrics.errors import CommandNotFound

            name = argv[0]
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise CommandNotFound(f"{name}: command not found", 127) from None
            raise CommandNotFound(f"{name}: {exc.strerror or exc}", 126) from None
        if not self._use_sigwait:
            self._install_forwarders()

    def _forward(self, signum: int, kernel_sent: bool) -> None:
        self.interrupted = True
        # A signal the terminal sent to our whole process group has reached the child already;
        # sending it again would make "press Ctrl-C twice to force" programs force.
        if kernel_sent:
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _install_forwarders(self) -> None:
        """Portable fallback where sigtimedwait is missing (macOS): handlers that forward."""

        def handler(signum: int, _frame: object) -> None:
            from_terminal = signum in (signal.SIGINT, signal.SIGQUIT) and in_foreground()
            self._forward(signum, from_terminal)

        for sig in FORWARDED:
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)

    def wait(self) -> ChildResult:
        """Wait for the child, forwarding the user's signals; never raises for a signal."""
        while True:
            pid, status, usage = os.wait4(self.pid, 0 if not self._use_sigwait else os.WNOHANG)
            if pid:
                break
            info = signal.sigtimedwait(_WAITED, 1.0)
            if info is not None and info.si_signo != signal.SIGCHLD:
                self._forward(info.si_signo, info.si_code == _SI_KERNEL)
        duration_ms = (time.monotonic() - self._start) * 1000.0
        exit_code = os.waitstatus_to_exitcode(status)
        signum = -exit_code if exit_code < 0 else None
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        return ChildResult(
            exit_code=None if signum else exit_code,
            signal=signum,
            interrupted=self.interrupted or signum in FORWARDED,
            start_epoch=self.start_epoch,
            duration_ms=round(duration_ms, 3),
            cpu_user_s=round(usage.ru_utime, 6),
            cpu_system_s=round(usage.ru_stime, 6),
            peak_memory_bytes=int(peak),
        )

    def release(self) -> None:
        """After the child ended: drop signals meant for it; a new one interrupts our own work."""
        if self._use_sigwait:
            while signal.sigtimedwait(_WAITED, 0) is not None:
                pass
        for sig in FORWARDED:
            signal.signal(sig, _on_interrupt)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)


def _spawn(argv: list[str], env: Mapping[str, str], mask: Iterable[int]) -> int:
    """posix_spawn: the child gets the signal mask and dispositions a shell would give it."""
    return os.posix_spawnp(argv[0], argv, env, setsigmask=mask, setsigdef=_RESTORED)


def _spawn_tied(argv: list[str], env: Mapping[str, str], mask: Iterable[int]) -> int:
    """Linux: like _spawn, and the kernel sends the child SIGTERM should the wrapper die, even
    by SIGKILL (PR_SET_PDEATHSIG), so killing the wrapper never leaves the command running."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: only system calls from here to exec
        try:
            os.close(report_r)
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:
                os._exit(128 + signal.SIGTERM)  # the wrapper died before the tie was made
            for sig in _RESTORED:
                signal.signal(sig, signal.SIG_DFL)
            # A Ctrl-C pending since the fork must act on the command as it would on any
            # program (die by SIGINT), not raise KeyboardInterrupt in this copy of Python.
            for sig in FORWARDED:
                if callable(signal.getsignal(sig)):
                    signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(report_w, str(exc.errno or 0).encode())
        finally:
            os._exit(127)  # only reached if exec failed; the parent reads the errno above
    os.close(report_w)
    try:
        failure = os.read(report_r, 32)  # empty once exec succeeded and closed the pipe
    finally:
        os.close(report_r)
    if failure:
        os.waitpid(pid, 0)
        errno = int(failure)
        raise OSError(errno, os.strerror(errno))
    return pid


def in_foreground() -> bool:
    """Whether we are in the foreground process group of the terminal on stdin."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread that never receives our signals, so they always reach the main thread."""
    import threading

    old = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return thread


def exit_like(result: ChildResult) -> NoReturn:
    """End the wrapper as the child ended: same exit code, or death by the same signal."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # AttributeError: started with it closed
            pass
    if result.signal:
        sig = result.signal
        if sig in _CORE_SIGNALS:
            import resource

            try:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            except (OSError, ValueError):
                pass
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP keep their default anyway
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            os.kill(os.getpid(), sig)
            time.sleep(0.05)
        except (OSError, ValueError):
            pass
    # Abandoned delivery threads must not hold the exit up; everything durable is committed.
    os._exit(result.status)
